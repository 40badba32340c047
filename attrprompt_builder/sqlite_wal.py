"""WAL mode for the package's SQLite files (the journal, the vector stores)."""

from __future__ import annotations

import sqlite3
import time

__all__ = ["enable_wal"]


def enable_wal(db: sqlite3.Connection) -> None:
    """Put ``db`` in WAL mode (persistent: later opens need no exclusive lock for it).

    Switching needs a moment of exclusive access and ignores the busy timeout, so num_proc workers
    opening the same new (or 0.1.x) file collide: retry briefly.
    """
    for attempt in range(50):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or attempt == 49:
                raise
            time.sleep(0.05 + 0.01 * attempt)
