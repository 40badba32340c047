"""The build's progress bar and datasets' "Generating train split" bar never share a terminal line (issue 11, item 16).

stderr is replayed through a minimal terminal (carriage return, newline, cursor up) and the final
screen is read back: each line holds one bar, and no bar's text is left behind in another's line.
"""

from __future__ import annotations

import re

import pytest

from attrprompt_builder import cli

_CURSOR_UP = "\x1b[A"


def final_screen(stream: str) -> list[str]:
    """What a terminal shows after ``stream``: tqdm writes only text, \\r, \\n and cursor-up."""
    lines: list[list[str]] = [[]]
    row = col = 0
    index = 0
    while index < len(stream):
        if stream.startswith(_CURSOR_UP, index):
            row, index = max(0, row - 1), index + len(_CURSOR_UP)
            continue
        char = stream[index]
        index += 1
        if char == "\r":
            col = 0
        elif char == "\n":
            row, col = row + 1, 0
        else:
            while len(lines) <= row:
                lines.append([])
            line = lines[row]
            line.extend(" " * (col + 1 - len(line)))
            line[col] = char
            col += 1
        while len(lines) <= row:
            lines.append([])
    return ["".join(line).rstrip() for line in lines]


def bar_names(line: str) -> list[str]:
    return re.findall(r"(Generating train split|AttrPrompt agnews)", line)


@pytest.mark.parametrize("num_proc", [1, 2])
def test_each_terminal_line_holds_at_most_one_bar(num_proc, tgi, tmp_path, capfd):
    argv = ["generate", "agnews", "--endpoint", tgi.url, "-n", "3", "--dedup-threshold", "off", "--embedder", "ngram",
            "-o", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--journal-dir", str(tmp_path / "journal"),
            "--num-proc", str(num_proc)]  # fmt: skip
    assert cli.main(argv) == 0
    screen = final_screen(capfd.readouterr().err)
    assert any(line.startswith("Generating train split: 12 examples") for line in screen), screen
    for line in screen:
        assert len(bar_names(line)) <= 1, screen
        if line.startswith("Generating train split"):
            assert line.endswith("examples/s]"), screen  # not followed by what another bar left there
    assert not any(name == "AttrPrompt agnews" for line in screen for name in bar_names(line)), screen  # cleared when done
