"""Reply segments: how workers on a cluster write paid replies down before anyone uses them.

A Ray worker cannot commit to the driver's journal (SQLite wants one machine), so it writes every
reply it paid for to shared storage, keyed exactly like the journal, in small immutable files
("segments"): one JSON line per reply, written under a temporary name and renamed into place (on an
object store the upload itself is atomic), so a reader never sees half a segment. A worker flushes
after ``FLUSH_COUNT`` replies, after ``FLUSH_SECONDS``, and always before it returns a block, so what
the driver receives is already durable; a worker that dies loses at most what it had in flight plus
one unflushed interval.

The driver copies segments into its journal (``absorb_segments``): at the start of every build, which
is how a run resumes after the driver died, and for the block of a worker that died. Paths go through
fsspec, so the folder may be on any filesystem every node can reach (NFS, s3://, gs://); a segment
already absorbed (same name and size) is not read again.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrprompt_builder.client.types import ChatReply
from attrprompt_builder.errors import ConfigError, one_line
from attrprompt_builder.redaction import redact

if TYPE_CHECKING:
    from attrprompt_builder.client.journal import Journal

__all__ = [
    "FLUSH_COUNT",
    "FLUSH_SECONDS",
    "PaidReply",
    "SegmentWriter",
    "absorb_segments",
    "join",
    "read_segments",
    "require_writable",
]

FLUSH_COUNT = 16
FLUSH_SECONDS = 1.0
_SUFFIX = ".jsonl"


@dataclass(frozen=True)
class PaidReply:
    """One reply as the journal keeps it: the key it is recorded under and the sample it answers."""

    key: str
    label: str
    index: int
    reply: ChatReply

    def to_json(self) -> str:
        r = self.reply
        record = {"key": self.key, "label": self.label, "idx": self.index, "text": r.text}
        record.update(prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens, finish_reason=r.finish_reason)
        return json.dumps(record, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> PaidReply:
        d = json.loads(line)
        reply = ChatReply(d["text"], d["prompt_tokens"], d["completion_tokens"], d.get("finish_reason"))
        return cls(d["key"], d["label"], int(d["idx"]), reply)


def join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name


def _fs(folder: str) -> tuple[Any, str]:
    from fsspec.core import url_to_fs

    return url_to_fs(folder)


class SegmentWriter:
    """Buffers a worker's paid replies and writes them as segments named ``<prefix>-<n>.jsonl`` in ``folder``."""

    def __init__(self, folder: str, prefix: str, *, flush_count: int = FLUSH_COUNT, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.fs, self.root = _fs(folder)
        self._made = False  # the folder is made by the first flush: a worker that pays nothing leaves no trace
        self.prefix = prefix
        self.flush_count = flush_count
        self.flush_seconds = flush_seconds
        self._buffer: list[PaidReply] = []
        self._oldest = 0.0
        self._written = 0

    def add(self, paid: PaidReply) -> None:
        if not self._buffer:
            self._oldest = time.monotonic()
        self._buffer.append(paid)
        if len(self._buffer) >= self.flush_count:
            self.flush()

    def flush_if_due(self) -> None:
        """Write the buffer once its oldest reply has waited ``flush_seconds`` (a worker calls this on a timer)."""
        if self._buffer and time.monotonic() - self._oldest >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        if not self._made:
            self.fs.makedirs(self.root, exist_ok=True)
            self._made = True
        data = ("\n".join(paid.to_json() for paid in self._buffer) + "\n").encode("utf-8")
        final = join(self.root, f"{self.prefix}-{self._written:06d}{_SUFFIX}")
        if _is_local(self.fs):
            scratch = join(self.root, f".{uuid.uuid4().hex}.part")
            with open(scratch, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())  # the rename below must not outlive the bytes it names
            os.replace(scratch, final)
        else:
            self.fs.pipe_file(final, data)  # an object store's PUT is all or nothing
        self._written += 1
        self._buffer.clear()

    @property
    def pending(self) -> int:
        return len(self._buffer)


@contextlib.contextmanager
def _file_in(folder: str, name: str) -> Iterator[tuple[Any, str]]:
    """An empty file ``name`` in ``folder`` for the ``with`` block: removed after, with the local folders made for it
    (a check leaves no trace, as a worker that paid nothing; the first flush makes the folder for good)."""
    fs, root = _fs(folder)
    made = [str(p) for p in (Path(root), *Path(root).parents) if not p.exists()] if _is_local(fs) else []
    path = join(root, name)
    try:
        fs.makedirs(root, exist_ok=True)
        fs.pipe_file(path, b"")
        yield fs, path
    finally:
        with contextlib.suppress(OSError, ValueError):
            fs.rm_file(path)
        for folder_made in made:  # deepest first
            with contextlib.suppress(OSError):
                os.rmdir(folder_made)


def require_writable(folder: str, *, where: str) -> None:
    """Refuse in one line a replies folder this process cannot write (``where``: whose process, for the message)."""
    try:
        with _file_in(folder, f".probe-{uuid.uuid4().hex}"):
            pass
    except (OSError, ValueError, ImportError) as err:  # ImportError: the filesystem's package (s3fs, gcsfs) is missing
        raise ConfigError(
            f"replies_dir: {where} cannot write {redact(folder)!r} ({redact(one_line(err))}); pass replies_dir (default: "
            "inside output_dir) on storage every node can write: a shared filesystem, or an s3:// or gs:// URL"
        ) from err


@contextlib.contextmanager
def shared_marker(folder: str) -> Iterator[str]:
    """A file the driver writes in ``folder`` for the nodes to look for (``require_shared``); removed after."""
    with _file_in(folder, f".driver-{uuid.uuid4().hex}") as (_, marker):
        yield marker


def require_shared(folder: str, marker: str, *, where: str) -> None:
    """Refuse in one line a replies folder that is not the driver's: ``marker``, written there by the driver, is absent."""
    fs, _ = _fs(folder)
    if not fs.exists(marker):
        raise ConfigError(
            f"replies_dir: {where} does not see the files the driver writes in {redact(folder)!r} (a folder local to "
            "each machine); pass replies_dir (default: inside output_dir) on storage every node shares: a shared "
            "filesystem, or an s3:// or gs:// URL"
        )


def _is_local(fs: Any) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def _segments(folder: str, prefix: str) -> tuple[Any, list[tuple[str, int]]]:
    fs, root = _fs(folder)
    if not fs.exists(root):
        return fs, []
    found = fs.glob(join(root, f"{prefix}*{_SUFFIX}"), detail=True)
    return fs, sorted((path, int(info.get("size") or 0)) for path, info in found.items())


def read_segments(folder: str, *, prefix: str = "") -> Iterator[PaidReply]:
    """Every reply in the segments of ``folder`` whose names start with ``prefix``."""
    fs, found = _segments(folder, prefix)
    for path, _ in found:
        yield from _read(fs, path)


def _read(fs: Any, path: str) -> Iterator[PaidReply]:
    with fs.open(path, "rb") as handle:
        for line in handle.read().decode("utf-8").splitlines():
            if line.strip():
                yield PaidReply.from_json(line)


def absorb_segments(journal: Journal, folder: str, *, prefix: str = "") -> int:
    """Copy the replies of ``folder``'s segments (names starting with ``prefix``) into ``journal``; returns
    how many were new. A segment absorbed before, unchanged, is skipped; replies already there win."""
    fs, found = _segments(folder, prefix)
    added = 0
    for path, size in found:
        name = "segment:" + path
        if journal.absorbed_signature(name) == str(size):
            continue
        added += journal.record_many(list(_read(fs, path)), absorbed=(name, str(size)))
    return added
