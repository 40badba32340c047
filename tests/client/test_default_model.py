"""With no endpoint, provider or model, builds run DEFAULT_MODEL in process; without the Hub they fail in seconds."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_model import build_tiny_chat_model

from attrprompt_builder import cli
from attrprompt_builder.client import backends
from attrprompt_builder.client.backends import DEFAULT_MODEL, BackendSpec
from attrprompt_builder.client.transformers_loading import hub_reachable


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-chat"))


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: a Hub that refuses at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def attrprompt(*args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    executable = shutil.which("attrprompt", path=os.path.dirname(sys.executable)) or shutil.which("attrprompt")
    assert executable, "the console script `attrprompt` is not installed"
    started = time.monotonic()
    result = subprocess.run([executable, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **env})
    return result, time.monotonic() - started


def test_nothing_chosen_resolves_to_the_default_model_named_in_help():
    assert BackendSpec.resolve() == BackendSpec(kind="transformers", model=DEFAULT_MODEL)
    assert BackendSpec.resolve(backend="transformers").model == DEFAULT_MODEL
    generate = cli.build_parser()._subparsers._group_actions[0].choices["generate"]
    model_help = next(action.help for action in generate._actions if "--model" in action.option_strings)
    assert DEFAULT_MODEL in model_help and "Apache-2.0" in model_help
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert DEFAULT_MODEL in readme


@pytest.mark.slow
def test_generate_without_endpoint_or_provider_runs_the_default_on_the_transformers_backend(
    tiny_model_dir, offline_models, monkeypatch, tmp_path
):
    monkeypatch.setattr(backends, "DEFAULT_MODEL", str(tiny_model_dir))  # the documented constant; the Hub is out of reach
    out = tmp_path / "out"
    argv = ["generate", "sst2", "-n", "2", "-o", str(out), "--max-new-tokens", "16", "--dedup-threshold", "off",
            "--embedder", "ngram", "--cache-dir", str(tmp_path / "cache"), "--journal-dir", str(tmp_path / "journal")]  # fmt: skip
    assert cli.main(argv) == 0
    generation = json.loads((out / "generation.json").read_text(encoding="utf-8"))["generation"]
    assert generation["backend"] == "transformers"
    assert generation["model"].endswith(tiny_model_dir.name)
    assert sum(1 for _ in (out / "data").glob("train-*.parquet")) >= 1


@pytest.mark.parametrize("offline_by", ["unreachable Hub", "HF_HUB_OFFLINE"])
def test_without_the_hub_the_default_model_fails_in_seconds_naming_the_choices(offline_by, closed_port, tmp_path):
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": f"http://127.0.0.1:{closed_port}"}
    if offline_by == "HF_HUB_OFFLINE":
        env["HF_HUB_OFFLINE"] = "1"
    # --embedder ngram: the default dedup embedder needs the Hub as well, and says so in its own line
    result, seconds = attrprompt("generate", "agnews", "-n", "5", "-o", str(tmp_path / "out"), "--embedder", "ngram", env=env)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    why = "HF_HUB_OFFLINE is set" if offline_by == "HF_HUB_OFFLINE" else "the Hub cannot be reached"
    assert errors == [
        f"error: the default model '{DEFAULT_MODEL}' is not in the Hugging Face cache and {why}; pass a local model "
        "folder (--model PATH), an endpoint (--endpoint URL) or a provider (--provider auto), or run once with Hub "
        "access to download it"
    ]
    assert "Traceback" not in result.stderr
    assert seconds < 30  # transformers alone retries for about a minute per model


def test_hub_reachable_asks_once_and_gives_up_after_its_timeout(tgi, monkeypatch):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "ENDPOINT", tgi.url)
    assert hub_reachable()  # any HTTP answer will do
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        monkeypatch.setattr(hub_constants, "ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        started = time.monotonic()
        assert not hub_reachable(timeout=0.5)
        assert time.monotonic() - started < 2
    monkeypatch.setattr(hub_constants, "ENDPOINT", tgi.url)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    before = tgi.count()
    assert not hub_reachable()
    assert tgi.count() == before


@pytest.mark.slow
def test_a_cached_default_model_runs_without_the_hub(tiny_model_dir, closed_port, tmp_path):
    """The real constant, from the Hugging Face cache layout, as a first run with Hub access leaves it."""
    cached = tmp_path / "hf" / "hub" / f"models--{DEFAULT_MODEL.replace('/', '--')}"
    commit = "0" * 40
    shutil.copytree(tiny_model_dir, cached / "snapshots" / commit)
    (cached / "refs").mkdir()
    (cached / "refs" / "main").write_text(commit, encoding="utf-8")
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": f"http://127.0.0.1:{closed_port}"}
    out = tmp_path / "out"
    result, seconds = attrprompt("generate", "agnews", "-n", "1", "-o", str(out), "--max-new-tokens", "8",
                                 "--dedup-threshold", "off", "--embedder", "ngram", env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    generation = json.loads((out / "generation.json").read_text(encoding="utf-8"))["generation"]
    assert (generation["backend"], generation["model"]) == ("transformers", DEFAULT_MODEL)
    assert seconds < 60
