"""An append-only, crash-safe record of every paid LLM reply.

A reply is committed here before the engine uses it, so a crash, ``kill -9`` or Ctrl-C loses at
most the requests still in flight; the next run with the same settings finds the rest by key and
sends only what is missing. SQLite in WAL mode with ``synchronous=NORMAL``: a commit survives the
death of the process (it is in the OS page cache), and commits are cheap enough to make one per
reply. Several worker processes (``num_proc``) may share one journal file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from attrprompt_builder.client.types import ChatReply, ChatRequest, SamplingParams

__all__ = ["Journal", "journal_folder", "request_key"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    idx INTEGER NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    finish_reason TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT NOT NULL,
    worker TEXT NOT NULL,
    stats TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (run_id, worker)
);
"""


def journal_folder(given: str | Path | None, *, cache_root: str | Path) -> Path:
    """The folder for journals: ``given`` when set, else beside the datasets a build writes.

    Journals of generate builds already exist at ``<cache_root>/attrprompt_journal``; moving the
    default would make every interrupted build start over and pay again.
    """
    return Path(given).expanduser() if given else Path(cache_root) / "attrprompt_journal"


def request_key(messages: tuple[dict[str, str], ...], *, model: str, backend: str, params: SamplingParams, seed: int) -> str:
    """Fingerprint of everything that determines a reply (never a credential)."""
    payload = json.dumps(
        {"messages": messages, "model": model, "backend": backend, "params": params.as_dict(), "seed": seed},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class Journal:
    """Replies by request key, plus the stats each run saved."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The engine's event loop owns the connection, but it is opened on the builder's thread.
        self._db = sqlite3.connect(self.path, timeout=60.0, check_same_thread=False, isolation_level=None)
        self._enable_wal()
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def _enable_wal(self) -> None:
        # Switching a new file to WAL needs a moment of exclusive access and ignores the busy
        # timeout, so num_proc workers opening the same new journal can collide: retry briefly.
        for attempt in range(50):
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or attempt == 49:
                    raise
                time.sleep(0.05 + 0.01 * attempt)

    def get(self, key: str) -> ChatReply | None:
        row = self._db.execute(
            "SELECT text, prompt_tokens, completion_tokens, finish_reason FROM replies WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        return ChatReply(text=row[0], prompt_tokens=row[1], completion_tokens=row[2], finish_reason=row[3])

    def record(self, request: ChatRequest, reply: ChatReply, *, label: str, index: int) -> None:
        """Commit one reply; returns only once it is durable against the process dying."""
        self._db.execute(
            "INSERT OR IGNORE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                request.key,
                label,
                index,
                reply.text,
                reply.prompt_tokens,
                reply.completion_tokens,
                reply.finish_reason,
                time.time(),
            ),
        )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def save_stats(self, run_id: str, worker: str, stats: dict[str, Any]) -> None:
        """Keep one worker's counts of a run (a JSON-able dict; the journal does not interpret it)."""
        self._db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?)", (run_id, worker, json.dumps(stats), time.time()))

    def load_stats(self, run_id: str) -> list[dict[str, Any]]:
        """Every worker's counts saved for ``run_id``, in worker order (empty when none were saved)."""
        rows = self._db.execute("SELECT stats FROM runs WHERE run_id = ? ORDER BY worker", (run_id,)).fetchall()
        return [json.loads(payload) for (payload,) in rows]

    def latest_run(self, run_prefix: str) -> str | None:
        """The most recent run id that starts with ``run_prefix`` (a builder's config id)."""
        row = self._db.execute(
            "SELECT run_id FROM runs WHERE substr(run_id, 1, ?) = ? ORDER BY updated DESC LIMIT 1",
            (len(run_prefix), run_prefix),
        ).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        self._db.close()
