"""An append-only, crash-safe record of every paid LLM reply, shared by every build that uses its folder.

A reply is committed here before the engine uses it, so a crash, ``kill -9`` or Ctrl-C loses at
most the requests still in flight; the next run finds the rest by key and sends only what is
missing. Keys are fingerprints of what decides a reply (``keys``), so one journal per folder serves every
recipe: editing a recipe's license or description re-pays nothing. SQLite in WAL mode with
``synchronous=NORMAL``: a commit survives the death of the process (it is in the OS page cache),
and commits are cheap enough to make one per reply. Lookups go through the ``replies`` primary-key
index, O(log n) however many keys the journal holds.

Several processes may share the file: ``num_proc`` workers, and whole builds running at once. A
build claims a key (a lease row with its owner and an expiry it keeps renewing) before it sends the
request, so a second build waits for that reply instead of paying for it; the lease of a build that
died expires and is taken over.

Journals of 0.1.x were one file per recipe (``<recipe>-<fingerprint>.sqlite``) in the same folder;
``absorb_legacy`` copies their rows in once (and again when such a file changes); it only reads
them and never deletes them. A damaged journal stops the build with one line naming the file, and
is never written to.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrprompt_builder.client.types import ChatReply
from attrprompt_builder.errors import AttrPromptError
from attrprompt_builder.sqlite_wal import enable_wal

if TYPE_CHECKING:
    from attrprompt_builder.client.segments import PaidReply

__all__ = [
    "JOURNAL_FILE",
    "Journal",
    "JournalDamagedError",
    "journal_folder",
    "journal_path",
]

JOURNAL_FILE = "journal.sqlite"
# What 0.1.x named its per-recipe journals (discovery's ``discover-<hash>.sqlite`` match too: harmless).
_LEGACY_NAME = re.compile(r"^.+-[0-9a-f]{16}\.sqlite$")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_DAMAGE_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB (primary codes)
_REPLY_COLUMNS = "key, label, idx, text, prompt_tokens, completion_tokens, finish_reason, created"
_REPLY_FIELDS = "text, prompt_tokens, completion_tokens, finish_reason"  # ChatReply's, in its order

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
CREATE TABLE IF NOT EXISTS leases (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS absorbed (
    file TEXT PRIMARY KEY,
    signature TEXT NOT NULL,
    absorbed REAL NOT NULL
);
"""


class JournalDamagedError(AttrPromptError, RuntimeError):
    """A journal file SQLite cannot read (truncated, overwritten, or not a journal at all)."""


def journal_folder(given: str | Path | None, *, cache_root: str | Path) -> Path:
    """The folder for journals: ``given`` when set, else beside the datasets a build writes.

    Journals of generate builds already exist at ``<cache_root>/attrprompt_journal``; moving the
    default would make every interrupted build start over and pay again.
    """
    return Path(given).expanduser() if given else Path(cache_root) / "attrprompt_journal"


def journal_path(given: str | Path | None, *, cache_root: str | Path) -> Path:
    """The one journal of a folder, shared by every recipe built with it."""
    return journal_folder(given, cache_root=cache_root) / JOURNAL_FILE


def _damaged(path: Path, what: str) -> JournalDamagedError:
    aside = shlex.quote(f"{path}.damaged")
    return JournalDamagedError(
        f"journal {str(path)!r} is damaged ({what}) and was left untouched; move it aside "
        f"(mv {shlex.quote(str(path))} {aside}) and rerun: a new journal starts empty, so replies only it held are paid again"
    )


def _check_file(path: Path) -> None:
    """Refuse a file SQLite would misread: empty, not SQLite, or shorter than its own header says.

    A zero-length file is refused too, although SQLite would take it for an empty database: this
    module never leaves one (``_create`` moves a complete file into place), so it is what is left of
    a journal, and starting over in it would silently pay again for everything it held.
    """
    size = path.stat().st_size
    if size == 0:
        raise _damaged(path, "the file is empty, 0 bytes")
    with path.open("rb") as handle:
        header = handle.read(100)
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise _damaged(path, "not an SQLite database")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    header_valid = header[24:28] == header[92:96]  # SQLite trusts the page count only then
    wal = path.with_name(path.name + "-wal")
    recovering = wal.exists() and wal.stat().st_size > 0  # a checkpoint cut short: the WAL completes the file
    if header_valid and pages and pages * page_size > size and not recovering:
        raise _damaged(path, f"truncated: {size} of {pages * page_size} bytes")


def _create(path: Path) -> None:
    """Create a journal so that no process ever sees it half made (a zero-length file is refused)."""
    scratch = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.new")
    db = sqlite3.connect(scratch, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")  # persistent: later opens need no exclusive lock for it
        db.executescript(_SCHEMA)
    finally:
        db.close()
    try:
        os.link(scratch, path)  # atomic, and fails instead of replacing a journal another process made
    except FileExistsError:
        pass
    except OSError:  # a filesystem without hard links: close enough, only a racing creator could lose
        if not path.exists():
            os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)


def _signature(path: Path) -> str:
    """Changes whenever SQLite writes to the file (its WAL included)."""
    stat = path.stat()
    wal = path.with_name(path.name + "-wal")
    return f"{stat.st_size}:{stat.st_mtime_ns}:{wal.stat().st_size if wal.exists() else 0}"


class Journal:
    """Replies by request key, leases of keys being paid for, and the stats each run saved."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            _create(self.path)
        _check_file(self.path)
        # The engine's event loop owns the connection, but it is opened on the builder's thread.
        self._db = sqlite3.connect(self.path, timeout=60.0, check_same_thread=False, isolation_level=None)
        try:
            with self._guarded():
                enable_wal(self._db)
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)  # adds the tables a 0.1.x journal lacks
        except BaseException:
            self._db.close()
            raise

    @contextlib.contextmanager
    def _guarded(self, path: Path | None = None) -> Iterator[None]:
        """SQLite's "malformed" and "not a database" as one line naming the file, not a traceback."""
        try:
            yield
        except sqlite3.DatabaseError as err:
            code = getattr(err, "sqlite_errorcode", 0) & 0xFF
            if code in _DAMAGE_CODES or "malformed" in str(err) or "not a database" in str(err):
                raise _damaged(path or self.path, str(err)) from err
            raise

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._guarded():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- replies --------------------------------------------------------------------------------
    def get(self, key: str) -> ChatReply | None:
        with self._guarded():
            row = self._db.execute(f"SELECT {_REPLY_FIELDS} FROM replies WHERE key = ?", (key,)).fetchone()
        return None if row is None else ChatReply(*row)

    def record(self, key: str, reply: ChatReply, *, label: str, index: int, end_lease: bool = True) -> None:
        """Commit one reply (a reply already there is kept) and drop the key's lease; durable on return.

        ``end_lease=False`` leaves the lease to a later ``lookup_or_claim_many(ended=...)``: a lease on a key
        that has a reply stops nobody (a claim looks for the reply first), and one statement that writes only
        the reply's pages costs half the CPU of a transaction that also deletes the lease (timed per statement inside a
        running build).
        """
        values = (key, label, index, reply.text, reply.prompt_tokens, reply.completion_tokens, reply.finish_reason, time.time())
        insert = f"INSERT OR IGNORE INTO replies ({_REPLY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        if not end_lease:
            with self._guarded():
                self._db.execute(insert, values)
            return
        with self._transaction() as db:
            db.execute(insert, values)
            db.execute("DELETE FROM leases WHERE key = ?", (key,))

    def record_many(self, paid: list[PaidReply], *, absorbed: tuple[str, str] | None = None) -> int:
        """Commit many replies in one transaction (replies already there are kept); returns how many were new.

        ``absorbed`` (name, signature) is remembered in the same transaction: a segment copied in is not read again.
        """
        created = time.time()
        rows = [
            (
                p.key,
                p.label,
                p.index,
                p.reply.text,
                p.reply.prompt_tokens,
                p.reply.completion_tokens,
                p.reply.finish_reason,
                created,
            )
            for p in paid
        ]
        with self._transaction() as db:
            before = db.total_changes
            db.executemany(f"INSERT OR IGNORE INTO replies ({_REPLY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            added = db.total_changes - before
            db.executemany("DELETE FROM leases WHERE key = ?", [(p.key,) for p in paid])
            if absorbed is not None:
                db.execute("INSERT OR REPLACE INTO absorbed VALUES (?, ?, ?)", (*absorbed, created))
        return added

    def absorbed_signature(self, name: str) -> str | None:
        with self._guarded():
            row = self._db.execute("SELECT signature FROM absorbed WHERE file = ?", (name,)).fetchone()
        return row[0] if row else None

    def __len__(self) -> int:
        with self._guarded():
            return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    # -- leases: one build pays for a key, the others wait for its reply ------------------------------
    # An owner is "host:pid:nonce" (client/journaled.py); a lease of a process that died on this host is
    # taken over at once, so a rerun after kill -9 does not wait for the dead build's leases to expire.
    def claim(self, key: str, *, owner: str, seconds: float) -> bool:
        """Take the key for ``owner`` for ``seconds``: False when it has a reply or another owner's live lease."""
        return self.lookup_or_claim((key,), owner=owner, seconds=seconds) is True

    def lookup_or_claim(self, keys: tuple[str, ...], *, owner: str, seconds: float) -> ChatReply | bool:
        """The reply under the first of ``keys`` that has one; else claim ``keys[-1]`` for ``owner`` (True), or
        False when another owner's live lease holds it."""
        return self.lookup_or_claim_many([keys], owner=owner, seconds=seconds)[0]

    def lookup_or_claim_many(
        self, requests: list[tuple[str, ...]], *, owner: str, seconds: float, ended: list[str] | None = None
    ) -> list[ChatReply | bool]:
        """``lookup_or_claim`` for many requests, in one transaction that also drops ``owner``'s ``ended`` leases
        (keys it has recorded replies for with ``end_lease=False``).

        A lookup per key and a claim per request took a transaction each; their locks and commits were most
        of the journal's CPU per row (timed inside a running build of bench/throughput.py), so the engine claims the
        requests it draws together.
        """
        now = time.time()
        wanted = sorted({key for keys in requests for key in keys})
        outcomes: list[ChatReply | bool] = []
        with self._transaction() as db:
            if ended:
                db.executemany("DELETE FROM leases WHERE key = ? AND owner = ?", [(key, owner) for key in ended])
            found: dict[str, tuple] = {}
            for start in range(0, len(wanted), 500):  # SQLite's bound on parameters per statement
                chunk = wanted[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                for row in db.execute(f"SELECT key, {_REPLY_FIELDS} FROM replies WHERE key IN ({marks})", chunk):
                    found[row[0]] = row[1:]
            for keys in requests:
                hit = next((found[key] for key in keys if key in found), None)
                if hit is not None:
                    outcomes.append(ChatReply(*hit))
                    continue
                held = db.execute("SELECT owner, expires FROM leases WHERE key = ?", (keys[-1],)).fetchone()
                if held is not None and held[0] != owner and held[1] > now and not _died_on_this_host(held[0]):
                    outcomes.append(False)
                    continue
                db.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?)", (keys[-1], owner, now + seconds))
                outcomes.append(True)
        return outcomes

    def renew(self, owner: str, *, seconds: float) -> None:
        """Extend every lease ``owner`` holds (the owner is alive, its requests still in flight)."""
        with self._transaction() as db:
            db.execute("UPDATE leases SET expires = ? WHERE owner = ?", (time.time() + seconds, owner))

    def release(self, key: str, *, owner: str) -> None:
        """Give up ``owner``'s lease on ``key`` without a reply (the request failed or was not sent)."""
        with self._transaction() as db:
            db.execute("DELETE FROM leases WHERE key = ? AND owner = ?", (key, owner))

    def release_all(self, owner: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM leases WHERE owner = ?", (owner,))

    # -- journals of 0.1.x -------------------------------------------------------------------------
    def absorb_legacy(self) -> int:
        """Copy in the rows of the per-recipe journals in this folder; returns the replies added.

        A file is read again only when it changed since it was last absorbed; rows already here win
        (both are paid replies to the same request); the files are only read, and stay where they are.
        """
        added = 0
        for legacy in sorted(self.path.parent.glob("*.sqlite")):
            if legacy != self.path and _LEGACY_NAME.match(legacy.name):
                added += self._absorb(legacy)
        return added

    def _absorb(self, legacy: Path) -> int:
        with self._guarded():
            done = self._db.execute("SELECT signature FROM absorbed WHERE file = ?", (legacy.name,)).fetchone()
        if done is not None and done[0] == _signature(legacy):
            return 0
        _check_file(legacy)
        with self._guarded(legacy):
            self._db.execute("ATTACH DATABASE ? AS legacy", (str(legacy),))
        try:
            with self._guarded(legacy):  # damage found here is the old file's, not this journal's
                problems = [row for (row,) in self._db.execute("PRAGMA legacy.quick_check")]
                if problems != ["ok"]:
                    raise _damaged(legacy, problems[0])
                tables = {name for (name,) in self._db.execute("SELECT name FROM legacy.sqlite_master WHERE type = 'table'")}
            with self._transaction() as db:
                added = 0
                if "replies" in tables:
                    copy = f"INSERT OR IGNORE INTO replies ({_REPLY_COLUMNS}) SELECT {_REPLY_COLUMNS} FROM legacy.replies"
                    added = db.execute(copy).rowcount
                if "runs" in tables:
                    db.execute("INSERT OR IGNORE INTO runs SELECT run_id, worker, stats, updated FROM legacy.runs")
        finally:
            self._db.execute("DETACH DATABASE legacy")
        with self._transaction() as db:  # after DETACH: reading may have checkpointed the file's WAL
            db.execute("INSERT OR REPLACE INTO absorbed VALUES (?, ?, ?)", (legacy.name, _signature(legacy), time.time()))
        return added

    # -- run stats ---------------------------------------------------------------------------------
    def save_stats(self, run_id: str, worker: str, stats: dict[str, Any]) -> None:
        """Keep one worker's counts of a run (a JSON-able dict; the journal does not interpret it)."""
        with self._guarded():
            self._db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?)", (run_id, worker, json.dumps(stats), time.time()))

    def load_stats(self, run_id: str) -> list[dict[str, Any]]:
        """Every worker's counts saved for ``run_id``, in worker order (empty when none were saved)."""
        with self._guarded():
            rows = self._db.execute("SELECT stats FROM runs WHERE run_id = ? ORDER BY worker", (run_id,)).fetchall()
        return [json.loads(payload) for (payload,) in rows]

    def latest_run(self, run_prefix: str) -> str | None:
        """The most recent run id that starts with ``run_prefix`` (a builder's config id)."""
        with self._guarded():
            row = self._db.execute(
                "SELECT run_id FROM runs WHERE substr(run_id, 1, ?) = ? ORDER BY updated DESC LIMIT 1",
                (len(run_prefix), run_prefix),
            ).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        self._db.close()


def _died_on_this_host(owner: str) -> bool:
    """True when ``owner`` names a process of this host that no longer runs (other hosts: unknown, so False)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False
