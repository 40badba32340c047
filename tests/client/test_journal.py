"""The journal: replies by key, durable once recorded, shared by processes; run stats; stable keys."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attrprompt_builder.client.journal import Journal, request_key
from attrprompt_builder.client.types import ChatReply, ChatRequest, SamplingParams

MESSAGES = (
    {"role": "system", "content": "You write news."},
    {"role": "user", "content": 'Write about "tennis" — in French.'},
)
PARAMS = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=128)
KEY_PARTS = {"model": "org/chat-model", "backend": "http://127.0.0.1:8080", "params": PARAMS, "seed": 42}


def request(key: str) -> ChatRequest:
    return ChatRequest(messages=MESSAGES, params=PARAMS, seed=1, key=key)


def reply(text: str) -> ChatReply:
    return ChatReply(text=text, prompt_tokens=12, completion_tokens=34, finish_reason="stop")


@pytest.fixture
def journal(tmp_path: Path):
    opened = Journal(tmp_path / "journals" / "run.sqlite")
    yield opened
    opened.close()


# -- replies ------------------------------------------------------------------------------------------
def test_a_recorded_reply_comes_back_by_its_key(journal: Journal):
    assert journal.get("k1") is None and len(journal) == 0
    journal.record(request("k1"), reply("première réponse"), label="sports", index=3)
    assert journal.get("k1") == reply("première réponse")
    assert journal.get("k2") is None and len(journal) == 1


def test_a_paid_reply_is_never_overwritten(journal: Journal):
    journal.record(request("k1"), reply("first"), label="sports", index=0)
    journal.record(request("k1"), reply("second"), label="sports", index=0)
    assert journal.get("k1") == reply("first") and len(journal) == 1


def test_a_reply_is_visible_to_a_new_connection_without_closing_the_first(journal: Journal):
    journal.record(request("k1"), reply("kept"), label="world", index=0)
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
        "from attrprompt_builder.client.types import ChatReply, ChatRequest, SamplingParams\n"
        "journal = Journal(sys.argv[1])\n"
        "request = ChatRequest(messages=({'role': 'user', 'content': 'x'},), params=SamplingParams(), seed=0, key='k1')\n"
        "journal.record(request, ChatReply(text='paid'), label='a', index=0)\n"
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
        journal.record(request(f"w{worker}-{i}"), reply(f"reply {worker}/{i}"), label=f"class{worker}", index=i)
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
