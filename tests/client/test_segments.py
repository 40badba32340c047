"""Reply segments: what a Ray worker writes before the driver sees a reply, and how the driver absorbs them.

Real files on a local folder (the fsspec local filesystem) and a real SQLite journal; no Ray needed.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from attrprompt_builder.client.journal import Journal
from attrprompt_builder.client.segments import (
    FLUSH_COUNT,
    PaidReply,
    SegmentWriter,
    absorb_segments,
    read_segments,
    require_writable,
)
from attrprompt_builder.client.types import ChatReply
from attrprompt_builder.errors import ConfigError


def paid(n: int, *, text: str | None = None) -> PaidReply:
    reply = ChatReply(text if text is not None else f"réponse {n} — «quoted»\nsecond line", 10 + n, 20 + n, "stop")
    return PaidReply(f"key-{n:04d}", "sports" if n % 2 else "world", n, reply)


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_segment_is_written_at_flush_count_replies_and_not_before(tmp_path):
    folder = tmp_path / "replies"
    writer = SegmentWriter(str(folder), "run-w0", flush_seconds=3600)
    for n in range(FLUSH_COUNT - 1):
        writer.add(paid(n))
    assert writer.pending == FLUSH_COUNT - 1
    assert files(folder) == []  # nothing durable yet, and not even an empty folder
    assert list(read_segments(str(folder))) == []

    writer.add(paid(FLUSH_COUNT - 1))
    assert writer.pending == 0
    assert files(folder) == ["run-w0-000000.jsonl"]
    assert list(read_segments(str(folder))) == [paid(n) for n in range(FLUSH_COUNT)]


def test_a_segment_is_written_once_its_oldest_reply_waited_flush_seconds(tmp_path):
    folder = tmp_path / "replies"
    writer = SegmentWriter(str(folder), "run-w1", flush_seconds=0.2)
    writer.add(paid(1))
    writer.flush_if_due()
    assert files(folder) == []  # younger than flush_seconds: still buffered
    time.sleep(0.1)
    writer.add(paid(2))
    time.sleep(0.15)  # the first reply has waited 0.25 s, the second 0.15 s: the oldest decides
    writer.flush_if_due()
    assert files(folder) == ["run-w1-000000.jsonl"]
    assert list(read_segments(str(folder))) == [paid(1), paid(2)]
    writer.flush_if_due()  # an empty buffer writes no empty segment
    writer.flush()
    assert files(folder) == ["run-w1-000000.jsonl"]


def test_only_complete_segments_are_visible_and_read_back_equals_written(tmp_path):
    folder = tmp_path / "replies"
    written = [paid(n) for n in range(3 * FLUSH_COUNT + 5)]
    writer = SegmentWriter(str(folder), "run-w2", flush_seconds=3600)
    for each in written:
        writer.add(each)
    writer.flush()
    assert files(folder) == [f"run-w2-{n:06d}.jsonl" for n in range(4)]  # no scratch file left behind
    # A worker killed inside a flush leaves its scratch file (hidden, not *.jsonl): readers never see it.
    (folder / ".0123abcd.part").write_text('{"key": "key-9999", "label": "world", "idx": 9', encoding="utf-8")
    assert list(read_segments(str(folder))) == written
    assert list(read_segments(str(folder), prefix="run-w2-000003")) == written[3 * FLUSH_COUNT :]
    assert list(read_segments(str(tmp_path / "never-written"))) == []


def test_absorbing_segments_is_idempotent_and_picks_up_new_ones(tmp_path):
    folder = tmp_path / "replies"
    journal = Journal(tmp_path / "journal" / "journal.sqlite")
    try:
        first = SegmentWriter(str(folder), "run-w0", flush_seconds=3600)
        for n in range(FLUSH_COUNT):
            first.add(paid(n))
        assert absorb_segments(journal, str(folder)) == FLUSH_COUNT
        assert len(journal) == FLUSH_COUNT
        assert journal.get("key-0003") == paid(3).reply

        # An absorbed segment is not opened again: one overwritten with garbage of the same size would
        # fail to parse if it were read (segments are immutable, so name and size identify one).
        segment = folder / "run-w0-000000.jsonl"
        segment.write_bytes(b"x" * segment.stat().st_size)
        assert absorb_segments(journal, str(folder)) == 0
        assert len(journal) == FLUSH_COUNT

        second = SegmentWriter(str(folder), "run-w1", flush_seconds=3600)
        for n in range(FLUSH_COUNT - 2, FLUSH_COUNT + 3):  # two replies the journal has, three new ones
            second.add(paid(n))
        second.flush()
        assert absorb_segments(journal, str(folder)) == 3
        assert len(journal) == FLUSH_COUNT + 3
        assert absorb_segments(journal, str(folder)) == 0
    finally:
        journal.close()


def test_a_reply_already_in_the_journal_wins_over_a_segment(tmp_path):
    folder = tmp_path / "replies"
    journal = Journal(tmp_path / "journal.sqlite")
    try:
        kept = paid(7, text="the reply the build already used")
        journal.record(kept.key, kept.reply, label=kept.label, index=kept.index)
        writer = SegmentWriter(str(folder), "run-w0")
        writer.add(paid(7, text="a second reply to the same request"))
        writer.add(paid(8))
        writer.flush()
        assert absorb_segments(journal, str(folder)) == 1
        assert journal.get(kept.key) == kept.reply
        assert journal.get("key-0008") == paid(8).reply
    finally:
        journal.close()


def test_a_replies_folder_that_cannot_be_written_is_one_line_and_a_check_leaves_no_trace(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        require_writable(f"{a_file}/replies", where="the driver")
    message = str(caught.value)
    assert message.startswith(f"replies_dir: the driver cannot write '{a_file}/replies' ([Errno 20] Not a directory")
    assert "\n" not in message

    require_writable(str(tmp_path / "new" / "replies"), where="the driver")
    assert files(tmp_path) == ["a_file"]  # the folders it made to check are gone again
    (tmp_path / "kept").mkdir()
    require_writable(str(tmp_path / "kept"), where="the driver")
    assert files(tmp_path / "kept") == []
