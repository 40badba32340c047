"""The output folder's layout: which folders ``generate`` may write into without ``overwrite``."""

from __future__ import annotations

import pytest

from attrprompt_builder.dataset import folder as layout
from attrprompt_builder.errors import ConfigError


def test_a_ray_build_that_died_before_writing_rows_is_resumed_in_its_folder(tmp_path):
    """Its workers' reply segments are all the folder holds: the same command must run again in it."""
    out = tmp_path / "out"
    segments = out / layout.REPLIES_FOLDER
    segments.mkdir(parents=True)
    (segments / "a1b2c3d4-w0-5e6f7a8b-000000.jsonl").write_text('{"key": "k"}\n', encoding="utf-8")
    assert layout.check_output_folder(out, overwrite=False) == out

    (out / "notes.txt").write_text("someone else's", encoding="utf-8")
    (segments / "a1b2c3d4-w0-5e6f7a8b-000000.jsonl").unlink()
    segments.rmdir()  # without the replies folder, a folder holding other files is still refused
    with pytest.raises(ConfigError, match="is not empty and was not written by attrprompt"):
        layout.check_output_folder(out, overwrite=False)
