"""Joining a Ray cluster and starting a build's workers on it, with one-line errors for what users get wrong.

``connect("auto")`` joins the cluster this machine belongs to (``ray start`` was run, or ``RAY_ADDRESS``
is set) and starts a local one when there is none; any other address must answer, and answer as a Ray
head, and one that does not ends the build in one line within seconds (Ray itself waits minutes, then
prints pages; a port where something else listens, such as the dashboard's, makes it wait forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import socket
import time
from typing import Any
from urllib.parse import urlsplit

from attrprompt_builder.client.ray_workers import ReplyWorker, WorkerSpec, concurrency_shares
from attrprompt_builder.client.segments import require_shared, require_writable, shared_marker
from attrprompt_builder.errors import AttrPromptError, ConfigError, MissingDependencyError, one_line
from attrprompt_builder.redaction import redact

__all__ = ["WorkerPool", "check_replies_folder", "connect", "default_workers", "require_ray", "worker_resources"]

_INSTALL = "pip install 'attrprompt-builder[ray]'"
_PROBE_SECONDS = 5.0
_CLIENT_ATTEMPTS = 4
_CLOSE_SECONDS = 5.0
# A Ray head's GCS speaks gRPC, so HTTP/2: after the client's preface and an empty SETTINGS frame, its
# first frame is SETTINGS (type 4). A web server answers text, a silent port nothing.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_SETTINGS_FRAME = 4
# An endpoint worker waits on the network: a quarter of a core lets a 2-core node run several.
_ENDPOINT_WORKER_CPUS = 0.25


def require_ray() -> Any:
    """The ``ray`` module, or one line naming the extra to install."""
    try:
        import ray
    except ImportError as err:
        raise MissingDependencyError(
            f"ray: Ray is not installed; {_INSTALL} (or drop ray=True to build on this machine)"
        ) from err
    return ray


_joined: dict[str, str] = {}


def connect(address: str) -> None:
    """Join the cluster at ``address`` ("auto": the running one, else a new local one), once per process."""
    ray = require_ray()
    if ray.is_initialized():
        try:
            current = ray.get_runtime_context().gcs_address
        except Exception:  # a Ray Client session may not say: trust the caller that connected it
            return
        if address not in ("auto", current, _joined.get("address")):
            raise ConfigError(
                f"ray: got {redact(address)!r}, but this process is already connected to the Ray cluster at {current!r}; "
                "pass that address or ray=True, or call ray.shutdown() first"
            )
        return
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "WARNING"}
    if address == "auto":
        try:
            ray.init(address="auto", **options)
        except ConnectionError:  # no cluster to join: this machine is the cluster
            ray.init(**options)
        return
    _probe(address)
    for attempt in range(1, _CLIENT_ATTEMPTS + 1):
        try:
            ray.init(address=address, **options)
            break
        except Exception as err:  # Ray raises ConnectionError, RuntimeError or ValueError depending on the scheme
            # A Ray Client server sometimes fails to start the session's server process (a gRPC fork race on
            # a busy head, "Initialization failure from server"); the next attempt gets a new one.
            if attempt == _CLIENT_ATTEMPTS or "Initialization failure from server" not in str(err):
                raise _unreachable(address, one_line(err)) from err
            ray.shutdown()
            time.sleep(1.0)
    _joined["address"] = address  # a ray:// address names the Ray Client server, not the cluster it reports


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
        with socket.create_connection((host, port), timeout=_PROBE_SECONDS) as connection:
            # Ray Client (ray://) has its own timeout; a TLS-only GCS (RAY_USE_TLS) would refuse the plain preface.
            if parts.scheme == "ray" or os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
                return
            connection.sendall(_HTTP2_PREFACE)
            first = _receive(connection, 9)
    except OSError as err:
        raise _unreachable(address, one_line(err)) from err
    if len(first) < 9 or first[3] != _SETTINGS_FRAME:
        raise _unreachable(
            address,
            "something answers there, but not a Ray head: its port is 6379 unless `ray start --head --port` changed it, "
            "and Ray Client takes ray://host:10001",
        )


def _receive(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _unreachable(address: str, why: str) -> ConfigError:
    return ConfigError(
        f"ray: cannot reach a Ray cluster at {redact(address)!r} ({why}); start one there with `ray start --head`, "
        "or pass ray=True (no address) to start a local one"
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


def check_replies_folder(folder: str) -> None:
    """Refuse in one line, before the build starts, a replies folder a node of the cluster cannot write, or
    one that is not shared: a node that does not see a file the driver wrote there would keep its replies
    where the driver cannot take them back (a local path on a cluster of several machines).

    One task per live node (no CPU asked: it runs even on a busy cluster); a node that joins later is
    checked by its workers (``ReplyWorker.ready``).
    """
    ray = require_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0, max_retries=0)(_node_writes)
    with shared_marker(folder) as marker:
        checks = [
            probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(folder, marker)
            for node in ray.nodes()
            if node.get("Alive")
        ]
        try:
            ray.get(checks)
        except ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, AttrPromptError):
                raise cause from None  # the node's own one-line error, without Ray's wrapping
            raise


def _node_writes(folder: str, marker: str) -> None:
    where = f"a Ray worker on {socket.gethostname()}"
    require_writable(folder, where=where)
    require_shared(folder, marker, where=where)


class WorkerPool:
    """The build's workers: Ray actors restarted when they die (the driver re-sends their unfinished blocks)."""

    def __init__(self, spec: WorkerSpec, *, workers: int | None, max_concurrency: int, token: str | None) -> None:
        ray = require_ray()
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

    async def start(self) -> None:
        """Wait until every worker has loaded its backends and can write the replies folder."""
        try:
            await asyncio.gather(*(actor.ready.remote() for actor in self.actors))
        except Exception as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, AttrPromptError):
                raise cause from None  # the worker's own one-line error, without Ray's wrapping
            raise

    def close(self) -> None:
        """Let each worker write its unwritten replies (a stopped build's last ones: not paid again on the rerun),
        for a few seconds at most, then end the workers."""
        ray = require_ray()
        with contextlib.suppress(Exception):  # a dead or hung worker: what it had not written is lost either way
            ray.get([actor.close.remote() for actor in self.actors], timeout=_CLOSE_SECONDS)
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
