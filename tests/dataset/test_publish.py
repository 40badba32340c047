"""publish() against a loopback Hub, read back with plain ``datasets.load_dataset``.

Everything that talks to the Hub runs in a subprocess: huggingface_hub and datasets read
HF_ENDPOINT (and HF_HUB_OFFLINE, HF_HOME...) when they are imported, so a fresh interpreter with the
environment set is the only setup that behaves exactly like a user's machine pointed at a Hub. The
reading process never imports attrprompt_builder, so the round-trip proves the repo loads without
our code. Each subprocess refuses DNS look-ups of anything but loopback and reports them, so a test
also fails if a library reaches for another host (the dataset viewer, a download counter...).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import huggingface_hub.constants
import pytest
from datasets import ClassLabel, Dataset, Features, List, Value
from datasets.info import DatasetInfosDict
from hub_server import HUB_USER, LoopbackHub
from huggingface_hub import DatasetCard, DatasetCardData, HfApi
from huggingface_hub.errors import HfHubHTTPError

import attrprompt_builder
from attrprompt_builder.dataset.publish import collect_publish_files, publish
from attrprompt_builder.errors import (
    ConfigError,
    EndpointError,
    HubError,
    HubUnavailableError,
    HubUnreachableError,
)

# The subprocesses import the same attrprompt_builder as this process: the installed one in CI, the
# working tree in a dev checkout.
PACKAGE_PARENT = Path(next(iter(attrprompt_builder.__path__))).resolve().parent
TOKEN = "hf_loopbackSecretToken0123456789"
NAMES = ["sports", "politics", "technology"]
CARD_BODY = "# Loopback dataset\n\nRows written by a test; see recipe.yaml for how they were made.\n"
PNG = bytes.fromhex("89504e470d0a1a0a") + b"\0" * 64  # binary, so the Hub stores it through LFS

_PRELUDE = """
import json, socket, sys
_lookup = socket.getaddrinfo
def _loopback_only(host, *args, **kwargs):
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"OFF_HOST_LOOKUP={host}", file=sys.stderr)
        raise socket.gaierror(socket.EAI_NONAME, "blocked by test: loopback only")
    return _lookup(host, *args, **kwargs)
socket.getaddrinfo = _loopback_only
"""

_PUBLISH = """
import logging, os
logging.basicConfig(level=logging.DEBUG)  # the token must stay out of even the debug logs
from huggingface_hub.utils import logging as hf_logging
hf_logging.set_verbosity_debug()
from attrprompt_builder.errors import AttrPromptError
from attrprompt_builder.dataset.publish import publish
args = json.loads(sys.argv[1])
try:
    url = publish(args.pop("folder"), args.pop("repo_id"), token=os.environ.get("PUBLISH_TOKEN"), **args)
except AttrPromptError as err:
    print("RESULT=" + json.dumps({"error": type(err).__name__, "message": str(err)}))
else:
    print("RESULT=" + json.dumps({"url": url}))
"""

_LOAD = """
import datasets
from huggingface_hub import DatasetCard, HfApi, HfFileSystem
# The dataset viewer lives on another host (datasets-server.<endpoint host>); a loopback Hub cannot
# answer for it, and datasets treats its absence as "no export", like for a brand-new repo.
datasets.config.USE_PARQUET_EXPORT = False
args = json.loads(sys.argv[1])
ds = datasets.load_dataset(args["repo_id"], split="train", revision=args.get("revision"))
card = DatasetCard.load(args["repo_id"], repo_type="dataset") if args.get("revision") is None else DatasetCard("")
api, where = HfApi(), {"repo_type": "dataset", "revision": args.get("revision")}
files = api.list_repo_files(args["repo_id"], **where)
infos = api.get_paths_info(args["repo_id"], ["data", "README.md", "nope"], **where)
shard = next(p for p in files if p.endswith(".parquet"))
# A ranged read, as pyarrow does on hf:// paths: the parquet footer magic ends the file.
with HfFileSystem().open(f"datasets/{args['repo_id']}/{shard}", revision=args.get("revision"), block_size=64) as f:
    f.seek(-4, 2)
    footer = f.read().decode()
print("RESULT=" + json.dumps({
    "rows": ds.to_dict(),
    "features": ds.features.to_dict(),
    "card_data": card.data.to_dict(),
    "card_text": card.text,
    "files": files,
    "paths_info": sorted([type(info).__name__, info.path] for info in infos),
    "footer": footer,
    "ours_imported": any(name.startswith("attrprompt_builder") for name in sys.modules),
}))
"""


def _run(
    script: str,
    hub: LoopbackHub,
    home: Path,
    args: dict[str, Any],
    *,
    token: str | None = None,
    hf_token: str | None = None,
) -> tuple[dict, str]:
    """Run ``script`` in a fresh interpreter pointed at ``hub``; ``token`` goes to publish(token=...),
    ``hf_token`` to the HF_TOKEN variable every Hub client reads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "TRANSFORMERS_"))}
    env.update(
        HF_ENDPOINT=hub.url,
        HF_HUB_DISABLE_XET="1",  # no Xet CAS on loopback: binary files take the LFS batch route
        HF_HOME=str(home),
        HF_UPDATE_DOWNLOAD_COUNTS="0",  # else load_dataset pings an S3 bucket to count downloads
        HF_HUB_DISABLE_TELEMETRY="1",
        PYTHONPATH=str(PACKAGE_PARENT),
    )
    if token is not None:
        env["PUBLISH_TOKEN"] = token
    if hf_token is not None:
        env["HF_TOKEN"] = hf_token
    proc = subprocess.run(
        [sys.executable, "-c", _PRELUDE + textwrap.dedent(script), json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=home,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"subprocess failed; unhandled routes {hub.unhandled}\n{output[-4000:]}"
    assert "OFF_HOST_LOOKUP" not in output, output[-4000:]
    result = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT="))
    return json.loads(result.removeprefix("RESULT=")), output


def _make_folder(root: Path, rows: dict[str, list], features: Features, *, shards: int = 1) -> Path:
    dataset = Dataset.from_dict(rows, features=features)
    (root / "data").mkdir(parents=True)
    for index in range(shards):
        part = dataset.shard(num_shards=shards, index=index, contiguous=True)
        part.to_parquet(str(root / "data" / f"train-{index:05d}-of-{shards:05d}.parquet"))
    card_data = DatasetCardData(
        license="other",
        task_categories=["text-classification"],
        tags=["synthetic", "attrprompt"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}],
    )
    DatasetInfosDict({"default": dataset.info}).to_dataset_card_data(card_data)
    card = DatasetCard(f"---\n{card_data.to_yaml()}\n---\n{CARD_BODY}")
    (root / "README.md").write_text(str(card), encoding="utf-8")
    (root / "recipe.yaml").write_text("name: loopback\nlabels: [sports, politics, technology]\n", encoding="utf-8")
    (root / "generation.json").write_text(json.dumps({"requests": len(dataset)}), encoding="utf-8")
    (root / "label_balance.png").write_bytes(PNG)
    return root


def _single_label(root: Path, *, shards: int = 1, prefix: str = "row") -> Path:
    features = Features(
        {"text": Value("string"), "label": ClassLabel(names=NAMES), "style": Value("string"), "prompt": Value("string")}
    )
    rows = {
        "text": [f"{prefix} {i}: é ünïcode ✓" for i in range(6)],
        "label": [0, 1, 2, 2, 1, 0],
        "style": ["formal", "casual"] * 3,
        "prompt": [f"Write a {NAMES[i % 3]} news line" for i in range(6)],
    }
    return _make_folder(root, rows, features, shards=shards)


@pytest.fixture(scope="module")
def hub() -> Iterator[LoopbackHub]:
    with LoopbackHub() as server:
        yield server


@pytest.mark.slow
def test_round_trip_keeps_rows_classlabel_card_and_side_files(hub: LoopbackHub, tmp_path: Path) -> None:
    folder = _single_label(tmp_path / "out")
    repo_id = f"{HUB_USER}/news-single"
    published, output = _run(_PUBLISH, hub, tmp_path, {"folder": str(folder), "repo_id": repo_id}, token=TOKEN)
    assert published == {"url": f"{hub.url}/datasets/{repo_id}"}
    assert TOKEN not in output
    assert hub.create_requests[-1]["visibility"] == "public"
    stored = hub.repos[repo_id].files()
    local_shard = folder / "data" / "train-00000-of-00001.parquet"
    assert stored["data/train-00000-of-00001.parquet"].data == local_shard.read_bytes()
    assert stored["data/train-00000-of-00001.parquet"].lfs and stored["label_balance.png"].lfs

    loaded, _ = _run(_LOAD, hub, tmp_path, {"repo_id": repo_id})
    assert loaded["ours_imported"] is False
    assert loaded["rows"] == Dataset.from_parquet(str(local_shard)).to_dict()
    assert loaded["features"]["label"] == {"names": NAMES, "_type": "ClassLabel"}
    assert loaded["card_text"] == CARD_BODY
    expected_card = DatasetCard((folder / "README.md").read_text(encoding="utf-8")).data.to_dict()
    assert loaded["card_data"] == expected_card
    assert {"recipe.yaml", "generation.json", "label_balance.png", "README.md"} <= set(loaded["files"])
    assert loaded["paths_info"] == [["RepoFile", "README.md"], ["RepoFolder", "data"]]
    assert loaded["footer"] == "PAR1"


@pytest.mark.slow
def test_multi_label_round_trip_and_republish_drops_stale_shards(hub: LoopbackHub, tmp_path: Path) -> None:
    repo_id = f"{HUB_USER}/news-multi"
    first = _single_label(tmp_path / "first", shards=2, prefix="old")
    _run(_PUBLISH, hub, tmp_path, {"folder": str(first), "repo_id": repo_id}, token=TOKEN)
    assert "data/train-00001-of-00002.parquet" in hub.repos[repo_id].files()

    features = Features({"text": Value("string"), "labels": List(ClassLabel(names=NAMES)), "prompt": Value("string")})
    rows = {"text": ["a match and a vote", "a chip", "nothing"], "labels": [[0, 1], [2], []], "prompt": ["p", "q", "r"]}
    second = _make_folder(tmp_path / "second", rows, features)
    _run(_PUBLISH, hub, tmp_path, {"folder": str(second), "repo_id": repo_id}, token=TOKEN)

    loaded, _ = _run(_LOAD, hub, tmp_path, {"repo_id": repo_id})
    assert loaded["rows"] == rows
    assert loaded["features"]["labels"] == {"feature": {"names": NAMES, "_type": "ClassLabel"}, "_type": "List"}
    shards = sorted(p for p in loaded["files"] if p.startswith("data/"))
    assert shards == ["data/train-00000-of-00001.parquet"]
    assert ".gitattributes" in loaded["files"]  # only stale shards go, not the repo's other files


@pytest.mark.slow
def test_private_flag_and_revision_reach_the_hub(hub: LoopbackHub, tmp_path: Path) -> None:
    folder = _single_label(tmp_path / "out")
    repo_id = f"{HUB_USER}/news-private"
    args = {"folder": str(folder), "repo_id": repo_id, "private": True, "revision": "v1"}
    _run(_PUBLISH, hub, tmp_path, args, token=TOKEN)
    expected = {"name": "news-private", "organization": HUB_USER, "visibility": "private", "type": "dataset"}
    assert hub.create_requests[-1] == expected
    repo = hub.repos[repo_id]
    assert repo.private
    assert "README.md" in repo.files("v1") and "README.md" not in repo.files("main")
    loaded, _ = _run(_LOAD, hub, tmp_path, {"repo_id": repo_id, "revision": "v1"}, hf_token=TOKEN)
    assert loaded["rows"]["text"] == [f"row {i}: é ünïcode ✓" for i in range(6)]


def test_bare_repo_name_is_published_under_the_token_owner(hub: LoopbackHub, tmp_path: Path) -> None:
    folder = _single_label(tmp_path / "out")
    published, _ = _run(_PUBLISH, hub, tmp_path, {"folder": str(folder), "repo_id": "bare-name"}, token=TOKEN)
    assert published == {"url": f"{hub.url}/datasets/{HUB_USER}/bare-name"}
    assert "data/train-00000-of-00001.parquet" in hub.repos[f"{HUB_USER}/bare-name"].files()


@pytest.mark.parametrize(
    ("token", "status"),
    [(TOKEN, "401"), ("hf_readOnlyToken", "403"), (None, "401")],
    ids=["unknown-token", "read-only-token", "no-token"],
)
def test_refused_token_is_one_line_naming_the_fix(tmp_path: Path, token: str | None, status: str) -> None:
    folder = _single_label(tmp_path / "out")
    with LoopbackHub(tokens={"hf_readOnlyToken": "read", "hf_someoneElse": "write"}) as strict_hub:
        result, output = _run(_PUBLISH, strict_hub, tmp_path, {"folder": str(folder), "repo_id": "team/x"}, token=token)
        assert strict_hub.repos == {}
    assert token is None or token not in output
    assert result["error"] == "ConfigError"
    message = result["message"]
    assert "\n" not in message and f"HTTP {status}" in message
    assert "--token" in message and "HF_TOKEN" in message and "'team/x'" in message


@pytest.mark.parametrize(("missing", "fix"), [("README.md", "attrprompt card"), ("data", "attrprompt generate")])
def test_incomplete_folder_is_refused_before_any_request(
    hub: LoopbackHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str, fix: str
) -> None:
    # In-process, so point HfApi at the loopback Hub: a request slipping past validation is seen, not sent away.
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.url)
    seen = len(hub.requests)
    folder = _single_label(tmp_path / "out")
    target = folder / missing
    if target.is_dir():
        for shard in target.iterdir():
            shard.unlink()
    else:
        target.unlink()
    with pytest.raises(ConfigError) as caught:
        publish(folder, "team/x", token=TOKEN)
    message = str(caught.value)
    assert len(hub.requests) == seen
    assert "\n" not in message and missing in message and fix in message


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ("data/train-*", "data/validation-*", r"data_files='data/validation-\*' matches none of"),
        ("license: other", "license: [other", r"the YAML header does not parse"),
    ],
)
def test_card_that_would_not_load_on_the_hub_is_refused(tmp_path: Path, old: str, new: str, error: str) -> None:
    folder = _single_label(tmp_path / "out")
    readme = folder / "README.md"
    text = readme.read_text(encoding="utf-8")
    assert old in text
    readme.write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(ConfigError, match=error) as caught:
        collect_publish_files(folder)
    assert "\n" not in str(caught.value) and "attrprompt card" in str(caught.value)


def test_offline_mode_and_dead_endpoint_are_one_line_errors(
    hub: LoopbackHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _single_label(tmp_path / "out")
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    seen = len(hub.requests)
    with pytest.raises(ConfigError, match="unset HF_HUB_OFFLINE"):
        publish(folder, "team/offline", token=TOKEN)
    assert len(hub.requests) == seen

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with LoopbackHub() as closed:
        dead_url = closed.url  # nothing listens there once the block ends
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", dead_url)
    with pytest.raises(HubUnreachableError, match=f"cannot reach the Hub at {dead_url}") as caught:
        publish(folder, "team/dead", token=TOKEN)
    assert "\n" not in str(caught.value) and TOKEN not in str(caught.value)
    assert isinstance(caught.value, ConnectionError) and caught.value.__cause__ is not None


@pytest.mark.parametrize(
    ("status", "error", "hint"),
    [(503, HubUnavailableError, "try again later"), (429, HubUnavailableError, "try again later"), (404, HubError, ": boom")],
)
def test_hub_http_failures_are_hub_errors_not_endpoint_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int, error: type[HubError], hint: str
) -> None:
    folder = _single_label(tmp_path / "out")
    response = httpx2.Response(status, request=httpx2.Request("POST", "http://hub.invalid/api/repos/create"))

    def refuse(*args: object, **kwargs: object) -> None:
        raise HfHubHTTPError("boom\nthe Hub's second line", response=response)

    monkeypatch.setattr(HfApi, "create_repo", refuse)
    with pytest.raises(HubError) as caught:
        publish(folder, "team/x", token=TOKEN)
    assert type(caught.value) is error and caught.value.status == status
    assert not isinstance(caught.value, EndpointError)  # those mean the LLM endpoint
    assert isinstance(caught.value.__cause__, HfHubHTTPError)
    message = str(caught.value)
    assert "\n" not in message and f"HTTP {status}" in message and "'team/x'" in message and hint in message


def test_upload_list_is_shards_card_side_files_and_plots(tmp_path: Path) -> None:
    folder = _single_label(tmp_path / "out", shards=2)
    (folder / "journal.jsonl").write_text("{}\n", encoding="utf-8")  # build state stays local
    assert collect_publish_files(folder) == [
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
        "README.md",
        "recipe.yaml",
        "generation.json",
        "label_balance.png",
    ]


def test_a_failed_upload_is_one_cli_line_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """The LFS storage refuses the shard (a 400 is not retried): huggingface_hub raises a bare RuntimeError."""
    import hub_server

    from attrprompt_builder import cli

    def refuse_storage(call: Any) -> Any:
        raise hub_server._HubError(400, "storage refused the object")

    routes = [(m, p, refuse_storage if r is hub_server._lfs_upload else r) for m, p, r in hub_server._ROUTES]
    monkeypatch.setattr(hub_server, "_ROUTES", routes)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)  # the LFS route, as on loopback
    folder = _single_label(tmp_path / "out")
    with LoopbackHub() as failing:
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", failing.url)
        assert cli.main(["push", str(folder), "team/upload-fails", "--token", TOKEN]) == 1
        assert "data/train-00000-of-00001.parquet" not in failing.repos["team/upload-fails"].files()  # nothing committed
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert "Traceback" not in err and len(lines) == 1
    assert lines[0].startswith("error: uploading '") and "to 'team/upload-fails' failed: the Hub answered HTTP 400" in lines[0]
    assert lines[0].endswith("publish again (nothing is committed until every file is uploaded; uploaded files are skipped)")
    assert TOKEN not in err
