"""Joining a Ray cluster and starting a build's workers on it, with one-line errors for what users get wrong.

``connect("auto")`` joins the cluster this machine belongs to (``ray start`` was run, or ``RAY_ADDRESS``
is set) and starts a local one when there is none; any other address must answer, and one that does
not ends the build in one line within seconds (Ray itself waits a minute and more, then prints pages).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import socket
from typing import Any
from urllib.parse import urlsplit

from attrprompt_builder.client.ray_workers import ReplyWorker, WorkerSpec, concurrency_shares
from attrprompt_builder.errors import AttrPromptError, ConfigError, MissingDependencyError, one_line
from attrprompt_builder.redaction import redact

__all__ = ["WorkerPool", "connect", "default_workers", "worker_resources"]

_INSTALL = "pip install 'attrprompt-builder[ray]'"
_PROBE_SECONDS = 5.0
# An endpoint worker waits on the network: a quarter of a core lets a 2-core node run several.
_ENDPOINT_WORKER_CPUS = 0.25


def _ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise MissingDependencyError(f"ray: Ray is not installed; {_INSTALL} (or drop --ray to build on this machine)") from err
    return ray


def connect(address: str) -> None:
    """Join the cluster at ``address`` ("auto": the running one, else a new local one), once per process."""
    ray = _ray()
    if ray.is_initialized():
        return
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "WARNING"}
    if address == "auto":
        try:
            ray.init(address="auto", **options)
        except ConnectionError:  # no cluster to join: this machine is the cluster
            ray.init(**options)
        return
    _probe(address)
    try:
        ray.init(address=address, **options)
    except Exception as err:  # Ray raises ConnectionError, RuntimeError or ValueError depending on the scheme
        raise _unreachable(address, one_line(err)) from err


def _probe(address: str) -> None:
    """Fail in seconds when nothing listens at ``address`` (host:port, or ray://host:port)."""
    parts = urlsplit(address if "://" in address else f"gcs://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as err:
        raise _unreachable(address, "the port is not a number") from err
    if not host or port is None:
        raise ConfigError(
            f"ray: got {redact(address)!r}; pass auto, host:port of a Ray head (port 6379), or ray://host:10001 (Ray Client)"
        )
    try:
        socket.create_connection((host, port), timeout=_PROBE_SECONDS).close()
    except OSError as err:
        raise _unreachable(address, one_line(err)) from err


def _unreachable(address: str, why: str) -> ConfigError:
    return ConfigError(
        f"ray: cannot reach a Ray cluster at {redact(address)!r} ({why}); start one there with `ray start --head`, "
        "or pass --ray without an address to start a local one"
    )


def worker_resources(kind: str, cluster: dict[str, float], *, computes: bool = False) -> dict[str, float]:
    """What one worker asks Ray for: a GPU for a local model when the cluster has GPUs, else a core (a model,
    or an endpoint client that also ``computes``: embeds replies) or a quarter of one (an endpoint client)."""
    if kind != "transformers":
        return {"num_cpus": 1 if computes else _ENDPOINT_WORKER_CPUS, "num_gpus": 0}
    return {"num_cpus": 1, "num_gpus": 1 if cluster.get("GPU", 0) >= 1 else 0}


def default_workers(kind: str, cluster: dict[str, float], *, max_concurrency: int) -> int:
    """One worker per GPU for a local model (per core without GPUs), else one per core, at most one per request slot."""
    if kind == "transformers":
        return max(1, int(cluster.get("GPU", 0)) or int(cluster.get("CPU", 1)))
    return max(1, min(max_concurrency, int(cluster.get("CPU", 1))))


def _require_room(count: int, resources: dict[str, float], cluster: dict[str, float]) -> None:
    """Workers Ray cannot place would wait forever: refuse them now, in one line."""
    for key, name in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
        need = count * resources[key]
        if need > cluster.get(name, 0):
            raise ConfigError(
                f"ray_workers: got {count} workers, which need {need:g} {name}s ({resources[key]:g} each) but the "
                f"cluster has {cluster.get(name, 0):g}; use fewer workers or add nodes"
            )


class WorkerPool:
    """The build's workers: Ray actors restarted when they die (the driver re-sends their unfinished blocks)."""

    def __init__(self, spec: WorkerSpec, *, workers: int | None, max_concurrency: int, token: str | None) -> None:
        ray = _ray()
        cluster = ray.cluster_resources()
        kind = spec.backend.kind
        count = workers or default_workers(kind, cluster, max_concurrency=max_concurrency)
        if count > max_concurrency:
            raise ConfigError(
                f"ray_workers: got {count} with max_concurrency={max_concurrency}; each worker needs at least one request "
                "slot: raise max_concurrency or use fewer workers"
            )
        resources = worker_resources(kind, cluster, computes=spec.after_block is not None)
        _require_room(count, resources, cluster)
        remote = ray.remote(ReplyWorker).options(max_restarts=-1, max_task_retries=0, scheduling_strategy="SPREAD", **resources)
        self.shares = concurrency_shares(max_concurrency, count)
        # The build's error budget is split like its concurrency: all workers together stop where one machine would.
        self.spec = spec = dataclasses.replace(spec, max_errors=max(1, math.ceil(spec.max_errors / count)))
        self.actors = [remote.remote(spec, max_concurrency=share, position=i, token=token) for i, share in enumerate(self.shares)]
        self.pids: list[int] = []

    async def start(self) -> None:
        """Wait until every worker has loaded its backends and can write the replies folder."""
        try:
            self.pids = list(await asyncio.gather(*(actor.ready.remote() for actor in self.actors)))
        except Exception as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, AttrPromptError):
                raise cause from None  # the worker's own one-line error, without Ray's wrapping
            raise

    def close(self) -> None:
        ray = _ray()
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
