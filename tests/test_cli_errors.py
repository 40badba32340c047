"""What a new user hits (issue 11): every mistake is one ``error: ...`` line, before anything is paid.

Run in process through ``cli.main`` against the loopback TGI server, so ``tgi.count()`` proves that
a refused command sent nothing. The broken-pipe case needs a real pipe, hence a subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from attrprompt_builder import cli
from attrprompt_builder.dataset import folder as layout
from attrprompt_builder.errors import ConfigError

PROJECT_README = "# my project\n\nNot a dataset card.\n"


def generate_args(tgi, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "generate", "agnews", "--endpoint", tgi.url, "-n", "1", "--dedup-threshold", "off", "--embedder", "ngram",
        "--cache-dir", str(tmp_path / "cache"), "--journal-dir", str(tmp_path / "journal"), *extra,
    ]  # fmt: skip


def one_error_line(capsys) -> str:
    """The command's stderr, which must be exactly one ``error:`` line."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


# -- item 4: generate never replaces files it did not write --------------------------------------


def test_an_empty_output_path_is_refused_and_the_project_readme_kept(tgi, tmp_path, in_empty_dir, capsys):
    (in_empty_dir / "README.md").write_text(PROJECT_README, encoding="utf-8")
    assert cli.main(generate_args(tgi, tmp_path, "-o", "")) == 1
    assert one_error_line(capsys) == "error: --output: got ''; pass the folder to write, e.g. --output agnews-synthetic"
    assert sorted(os.listdir(in_empty_dir)) == ["README.md"]
    assert (in_empty_dir / "README.md").read_text(encoding="utf-8") == PROJECT_README
    assert tgi.count() == 0


def test_a_folder_attrprompt_did_not_write_needs_overwrite(tgi, tmp_path, capsys):
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text(PROJECT_README, encoding="utf-8")
    (project / "notes.txt").write_text("keep me", encoding="utf-8")
    assert cli.main(generate_args(tgi, tmp_path, "-o", str(project))) == 1
    line = one_error_line(capsys)
    assert "is not empty and was not written by attrprompt" in line and "pass --overwrite" in line
    assert (project / "README.md").read_text(encoding="utf-8") == PROJECT_README
    assert tgi.count() == 0  # refused before the build

    assert cli.main(generate_args(tgi, tmp_path, "-o", str(project), "--overwrite")) == 0
    assert (project / "README.md").read_text(encoding="utf-8").startswith("---\n")  # the dataset card now
    assert (project / "notes.txt").read_text(encoding="utf-8") == "keep me"


def test_a_folder_attrprompt_wrote_is_regenerated_without_overwrite(tgi, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(generate_args(tgi, tmp_path, "-o", str(out))) == 0
    assert cli.main(generate_args(tgi, tmp_path, "-o", str(out), "-n", "2")) == 0
    assert "wrote " in capsys.readouterr().out
    assert json.loads((out / layout.GENERATION_FILE).read_text(encoding="utf-8"))["generation"]["samples_per_class"] == 2


def test_a_folder_written_by_0_1_0_counts_as_ours(tmp_path):
    # 0.1.0 wrote no marker; its generation.json is recognised instead.
    old = tmp_path / "old"
    (old / "data").mkdir(parents=True)
    (old / layout.GENERATION_FILE).write_text(json.dumps({"generation": {"seed": 0}, "stats": None}), encoding="utf-8")
    assert layout.check_output_folder(old, overwrite=False) == old
    (old / layout.GENERATION_FILE).write_text("[]", encoding="utf-8")  # someone else's generation.json
    with pytest.raises(ConfigError, match="not written by attrprompt"):
        layout.check_output_folder(old, overwrite=False)


# -- item 8: one line instead of a traceback, and before any request -----------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["-o", "{file}"], "error: --output: cannot write to '{file}': '{file}' is a file; pass a folder path"),
        (["-o", "{file}/out"], "error: --output: cannot write to '{file}/out': '{file}' is a file; pass a folder path"),
        (["-o", "{tmp}/out", "--journal-dir", "{file}/j"], "error: --journal-dir: cannot write to '{file}/j': '{file}'"),
        (["-o", "{tmp}/out", "--cache-dir", "{file}/c"], "error: --cache-dir: cannot write to '{file}/c': '{file}'"),
        (["-o", "{tmp}/out", "--num-proc", "0"], "error: --num-proc: got 0; use a whole number >= 1"),
    ],
)
def test_unusable_paths_and_num_proc_are_one_line_before_any_request(extra, expected, tgi, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder", encoding="utf-8")
    values = {"file": str(a_file), "tmp": str(tmp_path)}
    assert cli.main(generate_args(tgi, tmp_path, *(arg.format(**values) for arg in extra))) == 1
    assert one_error_line(capsys).startswith(expected.format(**values))
    assert tgi.count() == 0
    assert not (tmp_path / "out").exists()


def test_a_read_only_output_folder_is_refused_before_any_request(tgi, tmp_path, capsys):
    if os.geteuid() == 0:
        # chmod does not stop root; sysfs (on every Linux machine this project runs on) refuses new folders even to root.
        target, reason = "/sys/attrprompt-test-output", "Operation not permitted"
    else:
        read_only = tmp_path / "read_only"
        read_only.mkdir()
        read_only.chmod(0o555)
        target, reason = str(read_only / "out"), "Permission denied"
    assert cli.main(generate_args(tgi, tmp_path, "-o", target)) == 1
    assert one_error_line(capsys) == (f"error: --output: cannot write to '{target}' ({reason}); pass a folder you can write to")
    assert tgi.count() == 0


@pytest.mark.parametrize("command", ["generate", "discover"])
def test_an_out_of_range_port_is_one_line(command, tmp_path, capsys):
    url = "http://user:secret@127.0.0.1:99999"
    if command == "generate":
        argv = ["generate", "agnews", "--endpoint", url, "-o", str(tmp_path / "out")]
    else:
        argv = ["discover", "--labels", "a,b", "--domain", "news", "--endpoint", url, "-o", str(tmp_path / "r.yaml")]
    assert cli.main(argv) == 1
    line = one_error_line(capsys)
    assert line == "error: --endpoint: got 'http://127.0.0.1:99999'; its port is not a number from 1 to 65535"


def test_discover_output_that_cannot_be_written_is_refused_before_any_question(tmp_path, capsys):
    from scripted_llm import ScriptedLLM

    a_file = tmp_path / "a_file"
    a_file.write_text("x", encoding="utf-8")
    with ScriptedLLM() as server:
        argv = ["discover", "--labels", "world,sports", "--domain", "news", "--endpoint", server.url,
                "--journal-dir", str(tmp_path / "journal"), "-o", str(a_file / "recipe.yaml")]  # fmt: skip
        assert cli.main(argv) == 1
        assert server.count() == 0
    assert one_error_line(capsys).startswith(f"error: --output: cannot write to '{a_file}': ")


def test_providers_without_a_token_is_one_line_naming_the_fix(tmp_path, capsys):
    argv = ["generate", "agnews", "--provider", "auto", "--model", "org/model", "-n", "1", "-o", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache"), "--dedup-threshold", "off", "--embedder", "ngram"]  # fmt: skip
    assert cli.main(argv) == 1
    assert one_error_line(capsys) == (
        "error: --token: HF Inference Providers need a Hugging Face token; pass --token or set HF_TOKEN (or run `hf auth login`)"
    )


def test_a_reader_that_stops_early_gets_no_traceback():
    """`attrprompt estimate ... | head -1`: the pipe closes before (or while) estimate writes."""
    executable = shutil.which("attrprompt", path=os.path.dirname(sys.executable)) or shutil.which("attrprompt")
    assert executable
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write: always a broken pipe
    try:
        result = subprocess.run(
            [executable, "estimate", "agnews", "-n", "100"], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120
        )
    finally:
        os.close(write_end)
    assert result.returncode == 141
    assert result.stderr == ""


# -- item 12: Python wording becomes CLI wording; every flag has help ----------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["generate", "agnews", "--provider", "auto", "-o", "{tmp}/out"],
            "error: --model: got None; pass --model (a Hub model id) for --backend providers, or an --endpoint URL",
        ),
        (
            ["generate", "agnews", "--endpoint", "http://x:1", "--max-cost", "5", "-o", "{tmp}/out"],
            "error: --max-cost: got 5.0; also pass --price-in and --price-out (per 1k tokens)",
        ),
        (
            ["generate", "agnews", "--endpoint", "http://x:1", "--embedder", "/no/such/embedder", "-o", "{tmp}/out",
             "--cache-dir", "{tmp}/cache", "--journal-dir", "{tmp}/journal"],
            "error: --embedder: cannot load the model '/no/such/embedder' (no such folder, or no transformer encoder "
            "there); pass --embedder ",
        ),
    ],
)  # fmt: skip
def test_hints_written_for_python_read_as_flags(argv, expected, tmp_path, capsys):
    assert cli.main([arg.format(tmp=tmp_path) for arg in argv]) == 1
    line = one_error_line(capsys)
    assert line.startswith(expected)
    assert "=" not in line.split("; ", 1)[1]  # no keyword=value left for a CLI user


def test_every_flag_of_every_command_has_help():
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, command in commands.items()
        for action in command._actions
        if not action.help
    ]
    assert missing == []


# -- item 16 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", ["0", "-2"])
def test_show_with_no_prompts_to_print_is_an_error(count, capsys):
    assert cli.main(["show", "agnews", "-k", count]) == 1
    assert one_error_line(capsys) == f"error: --count: got {count}; use a whole number >= 1"


def test_discover_with_one_label_says_two_are_needed(tmp_path, capsys):
    argv = ["discover", "--labels", "a", "--domain", "news", "--endpoint", "http://127.0.0.1:9", "-o", str(tmp_path / "r")]
    assert cli.main(argv) == 1
    assert "at least two" in one_error_line(capsys)


# -- a stop inside a num_proc worker -----------------------------------------------------------------
def test_a_budget_stop_in_a_num_proc_worker_is_one_line(tgi, tmp_path, capsys):
    """The worker's error reaches the parent as traceback text only; the CLI still says it in one line."""
    code = cli.main([*generate_args(tgi, tmp_path, "--num-proc", "2", "--max-tokens", "500"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err, err
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert last.startswith("error: stopped before exceeding the budget"), err
