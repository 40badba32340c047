"""The journal: replies by key, durable once recorded, shared by processes and builds; leases; run stats;
stable keys; the per-recipe journals of 0.1.x read in; a damaged file refused in one line, untouched."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attrprompt_builder.client.journal import (
    JOURNAL_FILE,
    Journal,
    JournalDamagedError,
    journal_path,
)
from attrprompt_builder.client.keys import backend_key, request_key, request_payload
from attrprompt_builder.client.types import ChatReply, SamplingParams

MESSAGES = (
    {"role": "system", "content": "You write news."},
    {"role": "user", "content": 'Write about "tennis" — in French.'},
)
PARAMS = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=128)
KEY_PARTS = {"model": "org/chat-model", "backend": "http://127.0.0.1:8080", "params": PARAMS, "seed": 42}


def reply(text: str) -> ChatReply:
    return ChatReply(text=text, prompt_tokens=12, completion_tokens=34, finish_reason="stop")


@pytest.fixture
def journal(tmp_path: Path):
    opened = Journal(tmp_path / "journals" / "run.sqlite")
    yield opened
    opened.close()


# -- replies ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "backend",
    ["endpoint:http://127.0.0.1:8080", 'served:"quoted" model', "providers:café/模型"],
)
def test_a_key_spliced_from_the_payload_is_the_key_of_the_whole_request(backend: str):
    # Journals hold keys of the five-field dump; splicing the backend into a payload serialised once must give
    # the very same bytes, or every reply paid before would be paid again.
    messages = ({"role": "system", "content": 'Café \u2014 "quotes"\n'}, {"role": "user", "content": "Über 30 wörds"})
    params = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=64)
    whole = json.dumps(
        {"messages": messages, "model": "m", "backend": backend, "params": params.as_dict(), "seed": 7},
        sort_keys=True,
        ensure_ascii=False,
    )
    expected = hashlib.sha256(whole.encode("utf-8")).hexdigest()
    payload = request_payload(messages, model="m", params=params, seed=7)
    assert backend_key(payload, backend) == expected
    assert request_key(messages, model="m", backend=backend, params=params, seed=7) == expected


def test_a_recorded_reply_comes_back_by_its_key(journal: Journal):
    assert journal.get("k1") is None and len(journal) == 0
    journal.record("k1", reply("première réponse"), label="sports", index=3)
    assert journal.get("k1") == reply("première réponse")
    assert journal.get("k2") is None and len(journal) == 1


def test_a_paid_reply_is_never_overwritten(journal: Journal):
    journal.record("k1", reply("first"), label="sports", index=0)
    journal.record("k1", reply("second"), label="sports", index=0)
    assert journal.get("k1") == reply("first") and len(journal) == 1


def test_a_reply_is_visible_to_a_new_connection_without_closing_the_first(journal: Journal):
    journal.record("k1", reply("kept"), label="world", index=0)
    other = Journal(journal.path)
    try:
        assert other.get("k1") == reply("kept")
    finally:
        other.close()


def test_a_reply_survives_the_process_being_killed_right_after_recording(tmp_path: Path):
    path = tmp_path / "killed.sqlite"
    script = (
        "import os, signal, sys\n"
        "from attrprompt_builder.client.journal import Journal\n"
        "from attrprompt_builder.client.types import ChatReply\n"
        "journal = Journal(sys.argv[1])\n"
        "journal.record('k1', ChatReply(text='paid'), label='a', index=0)\n"
        "os.kill(os.getpid(), signal.SIGKILL)  # no close(), no atexit: what kill -9 leaves behind\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    reopened = Journal(path)
    try:
        assert reopened.get("k1") == ChatReply(text="paid")
    finally:
        reopened.close()


def _open_and_record(path: str, worker: int, start: multiprocessing.synchronize.Barrier) -> None:
    start.wait()  # every worker opens the brand-new file at the same moment
    journal = Journal(path)
    for i in range(40):
        journal.record(f"w{worker}-{i}", reply(f"reply {worker}/{i}"), label=f"class{worker}", index=i)
    journal.save_stats("run", f"worker-{worker}", {"sent": 40})
    journal.close()


def test_worker_processes_open_one_new_journal_at_once_and_lose_nothing(tmp_path: Path):
    path = str(tmp_path / "shared.sqlite")
    context = multiprocessing.get_context("fork")  # num_proc workers: separate processes, one file
    start = context.Barrier(4)
    workers = [context.Process(target=_open_and_record, args=(path, worker, start)) for worker in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
    assert [process.exitcode for process in workers] == [0, 0, 0, 0]
    journal = Journal(path)
    try:
        assert len(journal) == 160
        assert journal.get("w3-39") == reply("reply 3/39")
        assert journal.load_stats("run") == [{"sent": 40}] * 4
    finally:
        journal.close()
    with sqlite3.connect(path) as db:  # WAL: a worker reads while another one commits
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


# -- run stats ----------------------------------------------------------------------------------------
def test_stats_are_kept_per_run_and_worker_and_replaced_on_save(journal: Journal):
    journal.save_stats("cfg/run1", "w2", {"sent": 2})
    journal.save_stats("cfg/run1", "w1", {"sent": 1, "dropped": {"refusal": 3}})
    journal.save_stats("cfg/run1", "w2", {"sent": 5})
    assert journal.load_stats("cfg/run1") == [{"sent": 1, "dropped": {"refusal": 3}}, {"sent": 5}]  # worker order
    assert journal.load_stats("cfg/run2") == []


def test_latest_run_is_the_last_saved_under_a_prefix(journal: Journal):
    assert journal.latest_run("cfg/") is None
    journal.save_stats("cfg/b", "w", {})
    time.sleep(0.01)
    journal.save_stats("cfg/a", "w", {})
    time.sleep(0.01)
    journal.save_stats("other/c", "w", {})
    assert journal.latest_run("cfg/") == "cfg/a"
    assert journal.latest_run("%") is None  # a prefix, not a LIKE pattern


# -- keys ---------------------------------------------------------------------------------------------
def test_request_key_of_fixed_inputs_never_changes():
    # Journals on users' disks are found by these keys: a different value would make every build pay again.
    assert request_key(MESSAGES, **KEY_PARTS) == "c80246c890e5aeaa3a5671aa79bfa11e92663bb6a6a18c1ed68d7c0c6b6c4db9"


@pytest.mark.parametrize(
    "change",
    [
        {"model": "org/other-model"},
        {"backend": "http://127.0.0.1:8081"},
        {"params": SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=129)},
        {"seed": 43},
    ],
)
def test_request_key_changes_with_everything_that_shapes_the_reply(change):
    assert request_key(MESSAGES, **{**KEY_PARTS, **change}) != request_key(MESSAGES, **KEY_PARTS)
    edited = (MESSAGES[0], {"role": "user", "content": 'Write about "tennis" — in German.'})
    assert request_key(edited, **KEY_PARTS) != request_key(MESSAGES, **KEY_PARTS)


def test_request_key_ignores_the_order_of_keys_in_a_message():
    reordered = tuple({"content": m["content"], "role": m["role"]} for m in MESSAGES)
    assert request_key(reordered, **KEY_PARTS) == request_key(MESSAGES, **KEY_PARTS)


def test_journal_folders_are_created(tmp_path: Path):
    Journal(tmp_path / "a" / "b" / "j.sqlite").close()
    assert (tmp_path / "a" / "b" / "j.sqlite").is_file()
    assert os.path.getsize(tmp_path / "a" / "b" / "j.sqlite") > 0


def test_one_journal_per_folder_whatever_the_recipe(tmp_path: Path):
    assert journal_path(None, cache_root=tmp_path) == tmp_path / "attrprompt_journal" / JOURNAL_FILE
    assert journal_path(str(tmp_path / "j"), cache_root="/elsewhere") == tmp_path / "j" / JOURNAL_FILE


def test_a_lookup_uses_the_key_index(journal: Journal):
    # Millions of keys stay a B-tree search (O(log n)), never a scan of the table.
    plan = " ".join(row[-1] for row in journal._db.execute("EXPLAIN QUERY PLAN SELECT text FROM replies WHERE key = ?", ("k",)))
    assert "USING INDEX" in plan and "(key=?)" in plan, plan


# -- leases -------------------------------------------------------------------------------------------
def test_a_claimed_key_is_refused_to_another_owner_until_recorded_released_or_expired(journal: Journal):
    assert journal.claim("k1", owner="build-a", seconds=60)
    assert journal.claim("k1", owner="build-a", seconds=60)  # its own lease: renewing is fine
    assert not journal.claim("k1", owner="build-b", seconds=60)
    journal.release("k1", owner="build-b")  # not its lease: nothing changes
    assert not journal.claim("k1", owner="build-b", seconds=60)
    journal.release("k1", owner="build-a")
    assert journal.claim("k1", owner="build-b", seconds=60)
    journal.record("k1", reply("paid by b"), label="sports", index=0)
    assert not journal.claim("k1", owner="build-a", seconds=60)  # answered: nobody pays for it again
    assert journal.claim("k2", owner="dead-build", seconds=0.0)  # an owner that died holds a lease that has run out
    assert journal.claim("k2", owner="build-a", seconds=60)


def test_the_live_lease_of_a_process_that_died_on_this_host_is_taken_over_at_once(journal: Journal):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, alive = f"{socket.gethostname()}:{finished.stdout.strip()}:n1", f"{socket.gethostname()}:{os.getpid()}:n2"
    assert journal.claim("k1", owner=dead, seconds=60)
    assert journal.claim("k1", owner="build-b", seconds=60)  # the owner is gone: no need to wait 60 s
    assert journal.claim("k2", owner=alive, seconds=60)
    assert not journal.claim("k2", owner="build-b", seconds=60)  # a live process keeps its lease
    assert journal.claim("k3", owner=f"other-host:{finished.stdout.strip()}:n3", seconds=60)
    assert not journal.claim("k3", owner="build-b", seconds=60)  # another host's process: only expiry frees it


def test_requests_drawn_together_are_looked_up_and_claimed_in_one_transaction(journal: Journal):
    journal.record("old-key", reply("under the key 0.1.x wrote"), label="world", index=0)
    journal.record("served-2", reply("under the served key"), label="world", index=1)
    journal.claim("served-4", owner="build-b", seconds=60)
    begun = []
    journal._db.set_trace_callback(lambda sql: begun.append(sql) if sql.startswith("BEGIN") else None)
    outcomes = journal.lookup_or_claim_many(
        [("old-key", "served-1"), ("key-2", "served-2"), ("key-3", "served-3"), ("key-4", "served-4")],
        owner="build-a", seconds=60,
    )  # fmt: skip
    journal._db.set_trace_callback(None)
    assert outcomes == [reply("under the key 0.1.x wrote"), reply("under the served key"), True, False]
    assert len(begun) == 1
    assert not journal.claim("served-3", owner="build-b", seconds=60)  # build-a claimed the served key
    assert journal.claim("old-key", owner="build-b", seconds=60) is False  # answered: never claimed


def test_a_lease_left_by_a_recorded_reply_stops_nobody_and_ends_with_the_next_claims(journal: Journal):
    assert journal.claim("k1", owner="build-a", seconds=60)
    journal.record("k1", reply("paid by a"), label="world", index=0, end_lease=False)
    leases = lambda: [key for (key,) in journal._db.execute("SELECT key FROM leases ORDER BY key")]  # noqa: E731
    assert leases() == ["k1"]
    assert journal.lookup_or_claim(("k1",), owner="build-b", seconds=60) == reply("paid by a")  # the reply wins
    assert journal.lookup_or_claim_many([("k2",)], owner="build-a", seconds=60, ended=["k1"]) == [True]
    assert leases() == ["k2"]


def test_renew_keeps_an_owners_leases_alive(journal: Journal):
    assert journal.claim("k1", owner="build-a", seconds=0.0)
    journal.renew("build-a", seconds=60)
    assert not journal.claim("k1", owner="build-b", seconds=60)
    journal.release_all("build-a")
    assert journal.claim("k1", owner="build-b", seconds=60)


# -- journals of 0.1.x: one file per recipe, read in once, never removed ------------------------------
def legacy_journal(folder: Path, name: str, keys: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    old = Journal(path)
    for i, key in enumerate(keys):
        old.record(key, reply(f"old {key}"), label="world", index=i)
    old.save_stats("agnews-cfg/run", "w", {"sent": len(keys)})
    old.close()
    return path


def test_per_recipe_journals_are_absorbed_once_and_left_in_place(tmp_path: Path):
    folder = tmp_path / "attrprompt_journal"
    first = legacy_journal(folder, "agnews-0123456789abcdef.sqlite", ["a1", "a2"])
    legacy_journal(folder, "sst2-fedcba9876543210.sqlite", ["s1", "a1"])
    (folder / "notes.sqlite").write_bytes(b"not a journal, not named like one")  # left alone
    shared = Journal(folder / JOURNAL_FILE)
    shared.record("a2", reply("new a2"), label="world", index=1)
    try:
        assert shared.absorb_legacy() == 2  # a1 and s1; a2 was here already and keeps its reply
        assert [shared.get(k) for k in ("a1", "a2", "s1")] == [reply("old a1"), reply("new a2"), reply("old s1")]
        assert shared.latest_run("agnews-cfg/") == "agnews-cfg/run"
        assert shared.absorb_legacy() == 0
        grown = Journal(first)  # an older release wrote to its file again
        grown.record("a3", reply("old a3"), label="world", index=2)
        grown.close()
        assert shared.absorb_legacy() == 1 and shared.get("a3") == reply("old a3")
    finally:
        shared.close()
    old = Journal(first)
    assert len(old) == 3 and old.get("a1") == reply("old a1")
    old.close()


# -- a damaged journal: one line naming the file and the fix; the file is never written --------------
def filled_journal(path: Path, rows: int = 300) -> Path:
    journal = Journal(path)
    for i in range(rows):
        journal.record(f"key-{i}", reply("x" * 200), label="world", index=i)
    journal.close()
    return path


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":  # the last page lost (a copy cut short, a full disk)
        path.write_bytes(data[:-4096])
    elif how == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif how == "garbage inside":
        path.write_bytes(data[:4096] + b"\xab" * (len(data) - 4096))
    else:
        path.write_bytes(b"")


def assert_one_line_naming(err: BaseException, path: Path) -> None:
    message = str(err)
    assert "\n" not in message and str(path) in message and "move it aside" in message


@pytest.mark.parametrize("how", ["truncated", "garbage", "zero-length"])
def test_a_damaged_journal_is_refused_before_anything_is_written(tmp_path: Path, how: str):
    path = filled_journal(tmp_path / "journal.sqlite")
    damage(path, how)
    before = path.read_bytes()
    with pytest.raises(JournalDamagedError) as caught:
        Journal(path).close()
    assert_one_line_naming(caught.value, path)
    assert path.read_bytes() == before


def test_garbage_inside_a_journal_is_named_at_the_first_read_and_nothing_is_written(tmp_path: Path):
    path = filled_journal(tmp_path / "journal.sqlite")
    damage(path, "garbage inside")
    before = path.read_bytes()
    journal = Journal(path)  # the header is intact: SQLite finds the damage where it reads
    try:
        with pytest.raises(JournalDamagedError) as caught:
            journal.get("key-299")
        assert_one_line_naming(caught.value, path)
        with pytest.raises(JournalDamagedError):
            journal.record("new", reply("y"), label="world", index=0)
    finally:
        journal.close()
    assert path.read_bytes() == before


def test_a_damaged_per_recipe_journal_is_named_not_the_shared_one(tmp_path: Path):
    legacy = filled_journal(tmp_path / "agnews-0123456789abcdef.sqlite")
    damage(legacy, "garbage inside")
    shared = Journal(tmp_path / JOURNAL_FILE)
    try:
        with pytest.raises(JournalDamagedError, match="agnews-0123456789abcdef.sqlite"):
            shared.absorb_legacy()
    finally:
        shared.close()
