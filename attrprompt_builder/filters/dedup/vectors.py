"""Vectors computed once per text and kept: ``VectorStore`` (one SQLite file) and ``vectors_for``.

A vector is stored under the embedder's ``identity`` (model, its files, compute precision, pooling)
and a hash of the exact text, so a text embedded during a build is never embedded again by the
card, ``compare`` or the classifier label check, and a resumed build reuses the vectors of the texts
it replays. The build's store lives beside the journal (``VECTORS_FILE``); ``attrprompt generate``
copies the vectors of a folder's rows into the folder (``dataset.folder.VECTORS_FILE``).

It is a cache: a store that cannot be opened or read is reported once and left alone, and the
vectors are computed again; nothing paid for is ever lost with it.
"""

from __future__ import annotations

import hashlib
import sqlite3
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from attrprompt_builder.filters.dedup.embedders import Embedder, load_embedder
from attrprompt_builder.sqlite_wal import enable_wal

__all__ = ["VECTORS_FILE", "VectorStore", "cached_encode", "store_beside", "text_hash", "vectors_for"]

VECTORS_FILE = "vectors.sqlite"  # beside the build's journal
_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    identity TEXT NOT NULL,
    text_hash BLOB NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (identity, text_hash)
) WITHOUT ROWID;
"""
_LOOKUP_CHUNK = 500  # keys per SELECT (SQLite allows 999 parameters in old builds)
_WINDOW = 1024  # texts per encode call in vectors_for: sorted within, and the progress bar moves


def store_beside(journal_path: str | Path) -> Path:
    """Where a build keeps its vectors: beside its journal, so they live (and move) with the paid replies."""
    return Path(journal_path).with_name(VECTORS_FILE)


def text_hash(text: str) -> bytes:
    """The key of a text's vector: its exact UTF-8 bytes hashed (case and spacing matter to an encoder)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def identity_of(embedder: Embedder) -> str | None:
    """The name under which ``embedder``'s vectors are stored; None: not stored (cheap to recompute)."""
    return getattr(embedder, "identity", None)


class VectorStore:
    """Float32 vectors by (embedder identity, text hash), in one SQLite file; safe across threads and processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=60.0, check_same_thread=False, isolation_level=None)
            try:
                enable_wal(db)
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(_SCHEMA)
            except BaseException:
                db.close()
                raise
            self._db = db
        except (sqlite3.Error, OSError) as err:
            self._give_up(err)

    @property
    def usable(self) -> bool:
        return self._db is not None

    def _give_up(self, err: BaseException) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        print(
            f"warning: the vector store {str(self.path)!r} cannot be used ({err}); vectors are computed again "
            "(delete the file to start a new one)",
            file=sys.stderr,
        )

    def get(self, identity: str, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The stored vectors among ``keys`` (missing keys are absent from the result)."""
        found: dict[bytes, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            if self._db is None:
                return found
            try:
                for start in range(0, len(unique), _LOOKUP_CHUNK):
                    chunk = unique[start : start + _LOOKUP_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    rows = self._db.execute(
                        f"SELECT text_hash, vector FROM vectors WHERE identity = ? AND text_hash IN ({marks})",
                        (identity, *chunk),
                    )
                    for key, blob in rows:
                        found[bytes(key)] = np.frombuffer(blob, dtype=np.float32)
            except sqlite3.Error as err:
                self._give_up(err)
        return found

    def put(self, identity: str, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Store ``vectors`` (one row per key) in one transaction; keys already stored keep their vector."""
        rows = [(identity, key, np.ascontiguousarray(vector, dtype=np.float32).tobytes()) for key, vector in zip(keys, vectors)]
        self._write("INSERT OR IGNORE INTO vectors VALUES (?, ?, ?)", rows)

    def copy_to(self, other: VectorStore, keys: Iterable[bytes]) -> int:
        """Copy every stored vector of ``keys`` (under any identity) into ``other``; returns the rows copied."""
        unique = list(dict.fromkeys(keys))
        rows: list[tuple[str, bytes, bytes]] = []
        with self._lock:
            if self._db is None:
                return 0
            try:
                for start in range(0, len(unique), _LOOKUP_CHUNK):
                    chunk = unique[start : start + _LOOKUP_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    query = f"SELECT identity, text_hash, vector FROM vectors WHERE text_hash IN ({marks})"
                    rows += [(identity, bytes(key), bytes(blob)) for identity, key, blob in self._db.execute(query, chunk)]
            except sqlite3.Error as err:
                self._give_up(err)
                return 0
        other._write("INSERT OR IGNORE INTO vectors VALUES (?, ?, ?)", rows)
        return len(rows)

    def _write(self, statement: str, rows: list[tuple[str, bytes, bytes]]) -> None:
        if not rows:
            return
        with self._lock:
            if self._db is None:
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany(statement, rows)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as err:
                self._give_up(err)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cached_encode(embedder: Embedder, texts: Sequence[str], *, store: VectorStore | None) -> np.ndarray:
    """``embedder.encode(texts)``, taking stored vectors from ``store`` and storing the new ones.

    Texts that occur twice are encoded once; with no store (or an embedder without ``identity``)
    every distinct text is encoded, in one call.
    """
    out = np.empty((len(texts), embedder.dim), dtype=np.float32)
    if not texts:
        return out
    identity = identity_of(embedder) if store is not None else None
    keys = [text_hash(text) for text in texts]
    known = store.get(identity, keys) if store is not None and identity is not None else {}
    first: dict[bytes, int] = {}
    missing = [first.setdefault(key, i) for i, key in enumerate(keys) if key not in known and key not in first]
    if missing:
        encoded = np.asarray(embedder.encode([texts[i] for i in missing]), dtype=np.float32)
        if encoded.shape != (len(missing), embedder.dim):
            from attrprompt_builder.errors import ConfigError

            raise ConfigError(
                f"embedder: {embedder.name!r} returned shape {encoded.shape} for {len(missing)} texts; "
                f"expected ({len(missing)}, {embedder.dim})"
            )
        known.update(zip((keys[i] for i in missing), encoded))
        if store is not None and identity is not None:
            store.put(identity, [keys[i] for i in missing], encoded)
    for i, key in enumerate(keys):
        out[i] = known[key]
    return out


def vectors_for(
    texts: Sequence[str],
    *,
    embedder: str | Path | Embedder | None = None,
    precision: str = "auto",
    cache: VectorStore | str | Path | None = None,
    progress: str | None = "Embedding texts",
) -> np.ndarray:
    """Unit vectors of ``texts`` (float32, one row per text), embedding only what ``cache`` lacks.

    ``embedder`` and ``precision`` as ``load_embedder`` takes them; ``cache`` a ``VectorStore``, or
    the path of one (a generated folder's ``dataset.folder.VECTORS_FILE``, or the build's store beside
    its journal), which receives the vectors computed here. ``progress``: the bar's title (None: no bar).
    """
    from datasets.utils import tqdm

    model = load_embedder(embedder, precision=precision)
    store = VectorStore(cache) if isinstance(cache, (str, Path)) else cache
    try:
        identity = identity_of(model) if store is not None else None
        pending = len(texts)
        if store is not None and identity is not None:
            pending -= len(store.get(identity, [text_hash(text) for text in texts]))
        parts = []
        with tqdm(total=len(texts), desc=progress, unit="texts", disable=progress is None or pending == 0) as bar:
            for start in range(0, len(texts), _WINDOW):
                window = texts[start : start + _WINDOW]
                parts.append(cached_encode(model, window, store=store))
                bar.update(len(window))
        return np.concatenate(parts) if parts else np.zeros((0, model.dim), dtype=np.float32)
    finally:
        if store is not None and store is not cache:
            store.close()
