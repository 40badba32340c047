"""What goes wrong with ``--ray`` (issue 13, "Errors"): each is one ``error: ...`` line, never a traceback.

A missing ``ray`` and an unreachable cluster run the installed ``attrprompt`` command in a subprocess:
a fresh interpreter that has not joined the local Ray instance other tests start (``connect`` reuses
one that is running). A replies folder the workers cannot write needs real Ray workers: it runs in
process on the ``ray_local`` instance. Every case also shows the loopback server was sent nothing and,
where the build is refused before it starts, that no output folder was left behind.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fsspec.implementations.local import LocalFileSystem

from attrprompt_builder import cli
from attrprompt_builder.errors import ConfigError, MissingDependencyError
from attrprompt_builder.pipeline import generate_folder

# What a machine without the extra does on `import ray`.
_NO_RAY = """
import sys
class _NoRay:
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoRay())
"""


def generate_args(tgi, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "generate", "agnews", "--endpoint", tgi.url, "-n", "1", "--dedup-threshold", "off", "--embedder", "ngram",
        "--cache-dir", str(tmp_path / "cache"), "--journal-dir", str(tmp_path / "journal"), "-o", str(tmp_path / "out"),
        *extra,
    ]  # fmt: skip


def the_one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def attrprompt(*args: str, pythonpath: tuple[str, ...] = ()) -> tuple[subprocess.CompletedProcess, float]:
    executable = shutil.which("attrprompt", path=os.path.dirname(sys.executable)) or shutil.which("attrprompt")
    assert executable
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join([*pythonpath, str(Path(__file__).resolve().parents[1])])
    started = time.monotonic()
    result = subprocess.run([executable, *args], capture_output=True, text=True, timeout=120, env=env)
    return result, time.monotonic() - started


def test_without_the_ray_extra_one_line_names_the_install_command(tgi, tmp_path):
    blocker = tmp_path / "no_ray"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(textwrap.dedent(_NO_RAY), encoding="utf-8")
    result, _ = attrprompt(*generate_args(tgi, tmp_path, "--ray"), pythonpath=(str(blocker),))
    assert result.returncode == 1
    line = the_one_line(result.stderr)
    assert line.startswith("error: --ray: Ray is not installed;")
    assert "pip install 'attrprompt-builder[ray]'" in line
    assert tgi.count() == 0
    assert not (tmp_path / "out").exists()


def test_without_the_ray_extra_generate_folder_raises_one_line(tgi, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without the extra
    with pytest.raises(MissingDependencyError) as caught:
        generate_folder("agnews", tmp_path / "out", endpoint=tgi.url, samples_per_class=1, ray=True)
    assert "\n" not in str(caught.value)
    assert "pip install 'attrprompt-builder[ray]'" in str(caught.value)
    assert tgi.count() == 0


def test_a_replies_folder_each_machine_has_its_own_copy_of_is_one_line(ray_local, tgi, tmp_path, capsys):
    """memory:// is a folder per process, as a local path is a folder per machine: the workers can write it,
    but the driver would never see what they write there."""
    replies = f"memory://{tmp_path.name}/replies"
    assert cli.main(generate_args(tgi, tmp_path, "--ray", ray_local, "--replies-dir", replies)) == 1
    line = the_one_line(capsys.readouterr().err)
    assert re.match(rf"error: --replies-dir: a Ray worker on \S+ does not see the files the driver writes in '{replies}'", line)
    assert "on storage every node shares" in line
    assert tgi.count() == 0


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1:1", "[Errno 111] Connection refused"),  # nothing listens
        ("{tgi}", "something answers there, but not a Ray head"),  # a web server, like the dashboard's port
        ("{silent}", "timed out"),  # accepts connections and says nothing: Ray alone would wait for minutes
    ],
)
def test_an_unreachable_cluster_is_one_line_within_seconds(address, why, tgi, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as silent:
        address = address.format(tgi=tgi.url.split("://", 1)[1].rstrip("/"), silent=f"127.0.0.1:{silent.getsockname()[1]}")
        result, elapsed = attrprompt(*generate_args(tgi, tmp_path, "--ray", address))
    assert result.returncode == 1
    line = the_one_line(result.stderr)
    assert line.startswith(f"error: --ray: cannot reach a Ray cluster at '{address}' ({why}")
    assert line.endswith("start one there with `ray start --head`, or pass --ray (no address) to start a local one")
    assert elapsed < 15, f"{elapsed:.1f} s"
    assert tgi.count() == 0


def test_a_replies_folder_the_driver_cannot_write_is_one_line_before_joining(tgi, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder", encoding="utf-8")
    replies = f"{a_file}/replies"
    # An address nobody answers: were the folder checked after joining, this would be the error.
    assert cli.main(generate_args(tgi, tmp_path, "--ray", "127.0.0.1:1", "--replies-dir", replies)) == 1
    line = the_one_line(capsys.readouterr().err)
    assert line.startswith(f"error: --replies-dir: the driver cannot write '{replies}' ([Errno 20] Not a directory")
    assert line.endswith(
        "pass --replies-dir (default: inside --output) on storage every node can write: a shared filesystem, "
        "or an s3:// or gs:// URL"
    )
    assert tgi.count() == 0
    assert a_file.read_text(encoding="utf-8") == "not a folder"


class DriverOnlyFileSystem(LocalFileSystem):
    """Local files under a protocol only this process knows: like s3:// with s3fs installed on the driver alone."""

    protocol = "driveronly"


def test_a_replies_folder_the_workers_cannot_write_is_one_line(ray_local, tgi, tmp_path, capsys, monkeypatch):
    registry = importlib.import_module("fsspec.registry")._registry
    monkeypatch.setitem(registry, DriverOnlyFileSystem.protocol, DriverOnlyFileSystem)
    replies = f"driveronly://{tmp_path}/replies"
    assert cli.main(generate_args(tgi, tmp_path, "--ray", ray_local, "--replies-dir", replies)) == 1
    line = the_one_line(capsys.readouterr().err)
    assert re.match(rf"error: --replies-dir: a Ray worker on \S+ cannot write '{replies}' \(.*driveronly", line), line
    assert "on storage every node can write" in line
    assert tgi.count() == 0
    assert not (tmp_path / "replies").exists()  # the driver could write it (the line names a worker), and left no trace
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            ["--num-proc", "2", "--ray"],
            "error: --num-proc: got 2; on Ray the workers send the requests and one driver decides: drop --num-proc (use --ray-workers",
        ),
        (["--ray-workers", "2"], "error: --ray-workers: got 2; it applies to Ray builds: also pass --ray"),
        (["--replies-dir", "{tmp}/r"], "error: --replies-dir: got '{tmp}/r'; it applies to Ray builds: also pass --ray"),
        (["--ray", "--ray-workers", "0"], "error: --ray-workers: got 0;"),
    ],
)
def test_options_that_cannot_work_with_ray_are_one_line(extra, expected, tgi, tmp_path, capsys):
    values = {"tmp": str(tmp_path)}
    assert cli.main(generate_args(tgi, tmp_path, *(arg.format(**values) for arg in extra))) == 1
    assert the_one_line(capsys.readouterr().err).startswith(expected.format(**values))
    assert tgi.count() == 0
    assert not (tmp_path / "out").exists()


def test_generate_folder_refuses_num_proc_and_stray_ray_options_in_one_line(tgi, tmp_path):
    with pytest.raises(ConfigError, match=r"^num_proc: got 2; .*drop num_proc \(use ray_workers") as caught:
        generate_folder("agnews", tmp_path / "out", endpoint=tgi.url, num_proc=2, ray=True)
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match=r"^ray_workers: got 2; it applies to Ray builds: also pass ray=True"):
        generate_folder("agnews", tmp_path / "out", endpoint=tgi.url, ray_workers=2)
    assert tgi.count() == 0
