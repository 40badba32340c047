"""Nothing is paid twice across builds: one journal per folder for every recipe, keys that name the served
model (replicas and moved servers share them), leases between builds running at once; a damaged
journal is one line; ``generation.json`` says what this run did and shows no local path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from attrprompt_builder import AttrPromptBuilder
from attrprompt_builder.client.journal import JOURNAL_FILE, Journal
from attrprompt_builder.pipeline import generate_folder
from attrprompt_builder.recipe.presets import preset_path

CHAT = "/v1/chat/completions"
SMALL = {"samples_per_class": 3, "seed": 1, "dedup_threshold": None, "max_concurrency": 4}


def build(endpoint: str | list[str], tmp_path: Path, *, preset: str = "sst2", cache: str = "cache", **options) -> list[str]:
    """The texts of a build whose journal is ``tmp_path/journal``."""
    source = {"config_name": preset} if not preset.endswith(".yaml") else {"config": preset}
    builder = AttrPromptBuilder(
        **source,
        endpoint=endpoint,
        cache_dir=str(tmp_path / cache),
        journal_dir=str(tmp_path / "journal"),
        **{**SMALL, **options},
    )
    builder.download_and_prepare()
    return list(builder.as_dataset(split="train")["text"])


def test_editing_only_license_and_description_of_a_recipe_re_pays_nothing(tgi, tmp_path):
    recipe = tmp_path / "task.yaml"
    text = preset_path("sst2").read_text(encoding="utf-8")
    recipe.write_text(text, encoding="utf-8")
    first = build(tgi.url, tmp_path, preset=str(recipe))
    paid = tgi.count(CHAT)
    assert paid >= 6
    edited = text.replace("license: other", "license: cc-by-4.0").replace("description: 'AttrPrompt preset", "description: 'Mine")
    assert edited.count("cc-by-4.0") == 1 and "'Mine" in edited
    recipe.write_text(edited, encoding="utf-8")
    assert build(tgi.url, tmp_path, preset=str(recipe)) == first
    assert tgi.count(CHAT) == paid
    assert [p.name for p in (tmp_path / "journal").glob("*.sqlite")] == [JOURNAL_FILE]


def test_a_replica_added_or_a_server_moved_re_pays_nothing_another_model_pays(tgi, tmp_path):
    from tgi_server import TGIServer

    first = build(tgi.url, tmp_path)
    paid = tgi.count(CHAT)
    with TGIServer() as replica, TGIServer() as moved, TGIServer(model_id="org/other-model") as other:
        assert build([tgi.url, replica.url], tmp_path) == first
        assert build(moved.url, tmp_path) == first
        assert tgi.count(CHAT) == paid and replica.count(CHAT) == 0 and moved.count(CHAT) == 0
        build(other.url, tmp_path)
        assert other.count(CHAT) == paid  # a different model's replies are its own


def test_two_builds_at_once_on_one_journal_pay_each_sample_once(tgi, tmp_path):
    tgi.configure(latency=0.15)
    start = threading.Barrier(2)
    results: dict[str, list[str] | BaseException] = {}

    def run(name: str, n: int) -> None:
        start.wait()
        try:
            results[name] = build(tgi.url, tmp_path, cache=f"cache-{name}", samples_per_class=n)
        except BaseException as err:
            results[name] = err

    threads = [threading.Thread(target=run, args=(name, n)) for name, n in (("small", 4), ("large", 6))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    small, large = results["small"], results["large"]
    assert isinstance(small, list) and isinstance(large, list), results
    journal = Journal(tmp_path / "journal" / JOURNAL_FILE)
    try:
        assert tgi.count(CHAT) == len(journal)  # every sample paid exactly once, whichever build paid it
    finally:
        journal.close()
    assert small == large[:4] + large[6:10]  # the same stream: the small build's rows lead the large one's


def test_generation_json_reports_what_this_run_sent_and_no_local_path(tgi, tmp_path, minilm_path):
    options = {
        "endpoint": tgi.url,
        "samples_per_class": 2,
        "dedup_threshold": None,
        "embedder": minilm_path,
        "card": False,
        "cache_dir": str(tmp_path / "cache"),
    }
    generate_folder("sst2", tmp_path / "built", journal_dir=str(tmp_path / "j1"), **options)
    built = json.loads((tmp_path / "built" / "generation.json").read_text(encoding="utf-8"))
    assert built["stats"]["sent"] == 4 and built["cache_hit"] is False
    for again, journal_dir in (("hit", "j1"), ("hit-elsewhere", "j2")):  # a datasets cache hit, same or other journal
        generate_folder("sst2", tmp_path / again, journal_dir=str(tmp_path / journal_dir), **options)
        record = json.loads((tmp_path / again / "generation.json").read_text(encoding="utf-8"))
        assert record["cache_hit"] is True, again
        assert record["stats"] is not None, again
        assert (record["stats"]["sent"], record["stats"]["reused"], record["stats"]["kept"]) == (0, 4, 4), again
        assert record["stats"]["total_tokens"] == 0
        assert record["build_stats"]["sent"] == 4 and record["build_stats"]["total_tokens"] > 0
    assert tgi.count(CHAT) == 4
    for folder in ("built", "hit"):
        text = (tmp_path / folder / "generation.json").read_text(encoding="utf-8")
        assert str(Path(minilm_path).parent) not in text and "local folder" in text


def test_generation_info_shows_a_local_model_folder_by_its_last_parts(tmp_path):
    secret_home = tmp_path / "home" / "alice"
    builder = AttrPromptBuilder(
        config_name="sst2",
        backend="transformers",
        model=str(secret_home / "models" / "qwen-chat"),
        embedder=str(secret_home / "models" / "minilm"),
        cache_dir=str(tmp_path / "cache"),
    )
    info = builder.generation_info()
    assert "alice" not in json.dumps(info)
    assert info["model"] == "local folder …/models/qwen-chat" and info["embedder"] == "local folder …/models/minilm"


def test_the_cli_names_a_damaged_journal_in_one_line_and_leaves_it(tgi, tmp_path):
    journal_dir = tmp_path / "journal"
    journal_dir.mkdir()
    damaged = journal_dir / JOURNAL_FILE
    damaged.write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
    before = damaged.read_bytes()
    command = [sys.executable, "-m", "attrprompt_builder.cli", "generate", "sst2", "--endpoint", tgi.url, "-n", "1"]
    command += ["--journal-dir", str(journal_dir), "--dedup-threshold", "off", "-o", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: journal "), result.stderr
    assert str(damaged) in result.stderr and "move it aside" in result.stderr
    assert damaged.read_bytes() == before and tgi.count(CHAT) == 0
