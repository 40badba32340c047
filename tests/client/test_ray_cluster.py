"""What a Ray worker asks the cluster for, how many workers a build starts, and how an address is probed.

The GPU rules are checked with the resource dictionaries ``ray.cluster_resources()`` returns, which is
how they are covered on machines without a GPU; only the probe needs a real (local) Ray head.
"""

from __future__ import annotations

import pytest

from attrprompt_builder.client.ray_cluster import default_workers, worker_resources
from attrprompt_builder.errors import ConfigError

GPU_CLUSTER = {"CPU": 32.0, "GPU": 4.0, "memory": 1e11}
CPU_CLUSTER = {"CPU": 8.0, "memory": 1e10}


def test_a_local_model_asks_one_gpu_per_worker_when_the_cluster_has_gpus():
    assert worker_resources("transformers", GPU_CLUSTER) == {"num_cpus": 1, "num_gpus": 1}
    assert default_workers("transformers", GPU_CLUSTER, max_concurrency=16) == 4  # one per GPU


def test_a_local_model_runs_on_cpus_when_the_cluster_has_no_gpu():
    assert worker_resources("transformers", CPU_CLUSTER) == {"num_cpus": 1, "num_gpus": 0}
    assert worker_resources("transformers", {"CPU": 8.0, "GPU": 0.0}) == {"num_cpus": 1, "num_gpus": 0}
    assert default_workers("transformers", CPU_CLUSTER, max_concurrency=16) == 8  # one per core


@pytest.mark.parametrize("kind", ["endpoint", "providers"])
def test_an_endpoint_client_never_asks_for_a_gpu(kind):
    assert worker_resources(kind, GPU_CLUSTER) == {"num_cpus": 0.25, "num_gpus": 0}
    assert default_workers(kind, GPU_CLUSTER, max_concurrency=16) == 16  # one per core, capped by the request slots
    assert default_workers(kind, CPU_CLUSTER, max_concurrency=16) == 8
    assert default_workers(kind, {}, max_concurrency=16) == 1


def test_the_probe_knows_a_real_ray_head_from_other_listeners(ray_local, tgi):
    """A wrong port must fail in seconds without turning a right one away (the refusals: tests/test_cli_ray_errors.py)."""
    from attrprompt_builder.client.ray_cluster import _probe

    _probe(ray_local)  # the GCS of a real head answers as one
    with pytest.raises(ConfigError, match="something answers there, but not a Ray head"):
        _probe(tgi.url.split("://", 1)[1].rstrip("/"))
