"""Issue 13's acceptance on a real local Ray instance: a Ray build gives the one-machine build's rows, a
killed worker or driver re-pays at most what was in flight, and the endpoint never sees more than
``max_concurrency`` requests at once, however many workers send them.

The loopback server's replies are a pure function of the request (refusals and the scripted
near-duplicates below included), so builds with separate journals must agree row for row.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from attrprompt_builder.client.segments import FLUSH_COUNT, read_segments
from attrprompt_builder.pipeline import generate_folder

pytestmark = pytest.mark.slow

# A class's replies to one prompt in six are this text with a different ending: near-duplicates of each
# other that the filter drops after the first, decided by the prompt's hash, so the same in every build.
_REPEATED = "Honestly one of the dullest evenings I have spent in a cinema, and the popcorn was stale too"


def _script_near_duplicates(tgi) -> None:
    compose = tgi.compose

    def scripted(request, behaviour):
        crc = zlib.crc32(request.prompt.encode())
        if crc % 6 == 0:
            return f"{_REPEATED}{'!' * (1 + crc % 5)}", "scripted"
        return compose(request, behaviour)

    tgi.compose = scripted


def _rows(folder: Path) -> list[dict]:
    return [row for shard in sorted((folder / "data").glob("*.parquet")) for row in pq.read_table(shard).to_pylist()]


def _stats(folder: Path) -> dict:
    return json.loads((folder / "generation.json").read_text())["stats"]


def _paid_per_sample(tgi) -> Counter:
    """Successful chat replies per request (messages and seed): a count above 1 was paid twice."""
    paid: Counter = Counter()
    for entry in tgi.requests:
        if entry["route"] == "/v1/chat/completions" and entry["status"] == 200 and isinstance(entry["body"], dict):
            paid[json.dumps([entry["body"]["messages"], entry["body"].get("seed")], sort_keys=True)] += 1
    return paid


def _build(tgi, tmp_path: Path, tag: str, **options) -> Path:
    out = tmp_path / tag / "out"
    common = {"endpoint": tgi.url, "journal_dir": str(tmp_path / tag / "journal"), "cache_dir": str(tmp_path / tag / "cache")}
    generate_folder("sst2", out, card=False, **{**common, **options})
    return out


@pytest.mark.parametrize("workers", [1, 2])
def test_ray_build_gives_the_one_machine_rows_with_refusals_and_dedup(
    tgi, tmp_path, minilm_path, ray_local, minilm_forwards, workers
):
    tgi.configure(refusal_rate=0.1)
    _script_near_duplicates(tgi)
    options = {"samples_per_class": 40, "embedder": minilm_path, "max_concurrency": 8}

    local = _build(tgi, tmp_path, "local", **options)
    assert sum(minilm_forwards) >= 80
    minilm_forwards.clear()
    on_ray = _build(tgi, tmp_path, "ray", ray=ray_local, ray_workers=workers, **options)
    assert minilm_forwards == []  # the workers embedded the replies for the driver's near-duplicate check

    assert _rows(on_ray) == _rows(local)
    stats = _stats(on_ray)
    duplicates = stats["dropped"].get("near_duplicate", 0) + stats["dropped"].get("exact_duplicate", 0)
    assert stats["dropped"]["refusal"] > 0 and duplicates > 0  # both decisions were exercised
    assert stats["dropped"] == _stats(local)["dropped"]
    assert stats["kept"] == 80
    assert (on_ray / ".attrprompt-replies").is_dir()  # the workers' segments, beside the rows


def test_a_journal_started_on_one_machine_is_finished_on_ray(tgi, tmp_path, ray_local):
    """A build that began without Ray (here: a smaller one) is completed on Ray without paying its replies again."""
    common = {"journal_dir": str(tmp_path / "journal"), "dedup_threshold": "off", "endpoint": tgi.url}
    generate_folder("sst2", tmp_path / "laptop", samples_per_class=10, card=False, cache_dir=str(tmp_path / "c1"), **common)
    first = tgi.served
    generate_folder(
        "sst2", tmp_path / "cluster", samples_per_class=20, card=False, cache_dir=str(tmp_path / "c2"), ray=ray_local, **common
    )
    assert max(_paid_per_sample(tgi).values()) == 1
    stats = _stats(tmp_path / "cluster")
    assert stats["reused"] >= 20 and stats["sent"] == tgi.served - first


def test_the_endpoint_never_sees_more_than_max_concurrency_with_two_workers(tgi, tmp_path, ray_local):
    tgi.configure(latency=("lognormal", 0.05, 0.3))
    _build(tgi, tmp_path, "ray", ray=ray_local, ray_workers=2, max_concurrency=6, samples_per_class=60, dedup_threshold="off")
    peak = max(entry["in_flight"] for entry in tgi.requests if entry["in_flight"] is not None)
    assert peak <= 6
    assert peak > 3  # both workers sent at once: one worker's share alone is 3


def _worker_pids() -> list[int]:
    """Our workers' processes in this test's Ray instance: descendants of this process (its raylet is a child)
    that Ray titled "ray::ReplyWorker" (other Ray instances on the machine are left alone)."""
    parents, titles = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                titles[int(entry.name)] = (entry / "cmdline").read_bytes()
            except (OSError, ValueError, IndexError):
                continue

    def ours(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == os.getpid():
                return True
        return False

    return [pid for pid, title in titles.items() if title.startswith(b"ray::ReplyWorker") and ours(pid)]


def test_a_killed_worker_costs_at_most_its_in_flight_requests_and_the_rows_stay_the_same(tgi, tmp_path, ray_local):
    """One request in forty hangs for 3 s, so the worker's other replies of that block are flushed (after 1 s)
    while the block is unfinished; the worker is killed then. Its restarted self gets the block's unanswered
    requests only: what the dead worker flushed is taken from its segments, and no reply is in two segments."""
    tgi.configure(refusal_rate=0.1, latency=("lognormal", 0.03, 0.3))
    options = {"samples_per_class": 100, "max_concurrency": 8, "dedup_threshold": "off"}
    local = _build(tgi, tmp_path, "local", **options)
    tgi.reset()

    compose, hanging_since = tgi.compose, []

    def hang_one_in_forty(request, behaviour):
        if zlib.crc32(request.prompt.encode()) % 40 == 0 and not killed:
            hanging_since.append(time.monotonic())
            time.sleep(3.0)
        return compose(request, behaviour)

    tgi.compose = hang_one_in_forty
    killed: list[int] = []

    def kill_the_worker_mid_block() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (
            tgi.served >= 30 and hanging_since and time.monotonic() - hanging_since[-1] > 1.5
        ):
            time.sleep(0.01)
        pids = _worker_pids()
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    killer = threading.Thread(target=kill_the_worker_mid_block)
    killer.start()
    on_ray = _build(tgi, tmp_path, "ray", ray=ray_local, ray_workers=1, **options)
    killer.join()

    assert killed, "no worker was killed"
    assert _rows(on_ray) == _rows(local)
    segments = Counter(paid.key for paid in read_segments(str(on_ray / ".attrprompt-replies")))
    assert len(segments) >= 200 and max(segments.values()) == 1  # a flushed reply was never paid again
    # The bound README documents: the dead worker's requests in flight (its share, 8) plus what it had not flushed.
    twice = sum(n - 1 for n in _paid_per_sample(tgi).values())
    assert twice <= 8 + FLUSH_COUNT - 1


def _cli(url: str, tmp_path: Path, address: str) -> subprocess.Popen:
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "attrprompt_builder.cli", "generate", "agnews", "--endpoint", url, "--ray", address,
         "--ray-workers", "2", "--samples-per-class", "100", "--max-concurrency", "8", "--dedup-threshold", "off",
         "--journal-dir", str(tmp_path / "journal"), "--output", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def test_ctrl_c_stops_a_ray_build_within_seconds_and_the_rerun_pays_only_the_rest(tgi, tmp_path, ray_local):
    tgi.configure(latency=("lognormal", 0.05, 0.3))
    driver = _cli(tgi.url, tmp_path, ray_local)
    deadline = time.monotonic() + 180
    while tgi.served < 100 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    driver.send_signal(signal.SIGINT)
    stopped = time.monotonic()
    _, stderr = driver.communicate(timeout=60)
    assert time.monotonic() - stopped < 15
    assert driver.returncode != 0 and "run the same command again to resume" in stderr
    assert "Traceback" not in stderr

    rerun = _cli(tgi.url, tmp_path, ray_local)
    _, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert len(_rows(tmp_path / "out")) == 400
    twice = sum(n - 1 for n in _paid_per_sample(tgi).values())
    assert twice <= 8 + 2 * (FLUSH_COUNT - 1)


def test_a_killed_driver_resumes_paying_at_most_what_was_in_flight(tgi, tmp_path, ray_local):
    tgi.configure(latency=("lognormal", 0.05, 0.3))
    driver = _cli(tgi.url, tmp_path, ray_local)
    deadline = time.monotonic() + 180
    while tgi.served < 200 and driver.poll() is None and time.monotonic() < deadline:  # about half of the 400 rows
        time.sleep(0.01)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    assert driver.returncode == -signal.SIGKILL

    rerun = _cli(tgi.url, tmp_path, ray_local)
    _, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    rows = _rows(tmp_path / "out")
    assert len(rows) == 400
    # The bound README documents: the requests in flight (max_concurrency, 8) plus what each of the 2 workers had
    # not flushed; replies the workers flushed, and those the driver received, are not paid again.
    twice = sum(n - 1 for n in _paid_per_sample(tgi).values())
    assert twice <= 8 + 2 * (FLUSH_COUNT - 1)


def test_ray_build_gives_the_one_machine_rows_with_the_llm_judge(tmp_path, ray_local):
    """The judge runs on the driver, in sample order: a fifth of the replies are about another class, and
    the same ones are dropped and redrawn on Ray as on one machine."""
    from scripted_judge import TICKETS_RECIPE, ScriptedJudgeLLM

    recipe = tmp_path / "tickets.yaml"
    recipe.write_text(TICKETS_RECIPE, encoding="utf-8")
    options = {"samples_per_class": 15, "seed": 2, "embedder": "ngram", "max_concurrency": 8, "label_check": "judge"}
    with ScriptedJudgeLLM(off_class_rate=0.2) as server:
        folders = {}
        for tag, extra in (("local", {}), ("ray", {"ray": ray_local, "ray_workers": 2})):
            folders[tag] = out = tmp_path / tag / "out"
            generate_folder(
                str(recipe), out, card=False, endpoint=server.url, journal_dir=str(tmp_path / tag / "journal"),
                cache_dir=str(tmp_path / tag / "cache"), **options, **extra,
            )  # fmt: skip
    assert _rows(folders["ray"]) == _rows(folders["local"])
    assert _stats(folders["ray"])["dropped"]["label_mismatch"] > 0


def test_with_the_judge_on_the_build_endpoint_driver_and_workers_share_the_cap(tmp_path, ray_local):
    from scripted_judge import TICKETS_RECIPE, ScriptedJudgeLLM

    recipe = tmp_path / "tickets.yaml"
    recipe.write_text(TICKETS_RECIPE, encoding="utf-8")
    with ScriptedJudgeLLM(off_class_rate=0.2, latency=("lognormal", 0.05, 0.3)) as server:
        generate_folder(
            str(recipe), tmp_path / "out", card=False, endpoint=server.url, journal_dir=str(tmp_path / "journal"),
            cache_dir=str(tmp_path / "cache"), samples_per_class=20, embedder="ngram", max_concurrency=6,
            label_check="judge", ray=ray_local, ray_workers=2,
        )  # fmt: skip
        peak = max(entry["in_flight"] for entry in server.requests if entry["in_flight"] is not None)
    assert 3 < peak <= 6  # the driver's judge has 3 of the 6 slots, the two workers 3 between them


def test_a_local_model_runs_in_each_worker_and_gives_the_one_machine_rows(tmp_path, ray_local):
    """The transformers backend on Ray: each worker loads the model (on a GPU when the cluster has one, see
    ``worker_resources``; here the CPU) and answers exactly as the one-machine build does."""
    from tiny_model import build_tiny_chat_model

    model = str(build_tiny_chat_model(tmp_path / "tiny-chat"))
    options = {"backend": "transformers", "model": model, "samples_per_class": 4, "dedup_threshold": "off", "max_new_tokens": 24}
    folders = {}
    for tag, extra in (("local", {}), ("ray", {"ray": ray_local, "ray_workers": 1})):
        folders[tag] = out = tmp_path / tag / "out"
        generate_folder(
            "sst2", out, card=False, journal_dir=str(tmp_path / tag / "journal"), cache_dir=str(tmp_path / tag / "cache"),
            **options, **extra,
        )  # fmt: skip
    assert _rows(folders["ray"]) == _rows(folders["local"])
    assert _stats(folders["ray"])["sent"] >= 8


def test_faults_are_retried_by_the_workers_and_counted_by_the_driver(tgi, tmp_path, ray_local):
    """Each worker's dispatcher retries (and backs off on 429/503) as on one machine; the driver's stats add
    the workers' counts up, and the rows are still the one-machine rows."""
    tgi.configure(faults={"429": 0.08, "503": 0.08, "500": 0.05}, refusal_rate=0.1)
    options = {"samples_per_class": 40, "max_concurrency": 8, "dedup_threshold": "off"}
    local = _build(tgi, tmp_path, "local", **options)
    on_ray = _build(tgi, tmp_path, "ray", ray=ray_local, ray_workers=2, **options)
    assert _rows(on_ray) == _rows(local)
    assert {"http_429", "http_503", "http_500"} <= set(_stats(on_ray)["retries"])


def test_a_permanent_error_stops_a_ray_build_at_once_with_one_request(tgi, tmp_path, ray_local):
    """Until the first reply one request is out in all (not one per worker), so a wrong token costs one request."""
    from attrprompt_builder.errors import EndpointPermanentError

    tgi.configure(fixed_status=401)
    with pytest.raises(EndpointPermanentError, match=r"\(401\)") as info:
        _build(tgi, tmp_path, "ray", ray=ray_local, ray_workers=2, samples_per_class=20, dedup_threshold="off")
    assert "\n" not in str(info.value)
    assert tgi.count("/v1/chat/completions") == 1


def test_ray_build_gives_the_one_machine_rows_with_the_classifier_label_check(tmp_path, minilm_path, ray_local):
    """drop_label_issues on Ray: the classifier flags the same rows, and the redraw rounds (one worker pool for
    all of them) replace them with the same samples as on one machine."""
    from scripted_labels import ScriptedLabels

    recipe = tmp_path / "topics.yaml"
    recipe.write_text(
        "name: topics\ndomain: note\nlicense: other\nlabels: [weather, cooking, finance]\nattributes:\n"
        "  - name: tone\n    values: [calm, urgent, dry, warm]\nprompts:\n"
        '  attributed: "Write a note about {{ label_text }} in a {{ tone }} tone."\n'
        '  simple: "Write a note about {{ label_text }}."\n',
        encoding="utf-8",
    )
    options = {"samples_per_class": 20, "embedder": minilm_path, "dedup_threshold": "off", "label_check": "classifier"}
    with ScriptedLabels() as server:
        folders = {}
        for tag, extra in (("local", {}), ("ray", {"ray": ray_local, "ray_workers": 2})):
            folders[tag] = out = tmp_path / tag / "out"
            generate_folder(
                str(recipe), out, card=False, endpoint=server.url, journal_dir=str(tmp_path / tag / "journal"),
                cache_dir=str(tmp_path / tag / "cache"), drop_label_issues=True, **options, **extra,
            )  # fmt: skip
    assert _rows(folders["ray"]) == _rows(folders["local"])
    assert _stats(folders["ray"])["dropped"]["label_issue"] > 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _head_is_up(gcs: int, client: int, env: dict[str, str]) -> bool:
    status = subprocess.run(
        [str(Path(sys.executable).with_name("ray")), "status", f"--address=127.0.0.1:{gcs}"],
        capture_output=True, env=env, timeout=60,
    )  # fmt: skip
    if status.returncode != 0:
        return False
    try:
        socket.create_connection(("127.0.0.1", client), timeout=1).close()
    except OSError:
        return False
    return True


def test_a_driver_outside_the_cluster_builds_through_ray_client(tgi, tmp_path):
    """``--ray ray://HEAD:PORT`` from a machine that is not a node (a laptop): the driver runs here, the workers
    on the cluster. The cluster is a head started with ``ray start`` (Ray's token authentication off on both
    sides, as a cluster configured for Ray Client would have its own)."""
    gcs, client = _free_port(), _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    head = subprocess.Popen(
        [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", f"--port={gcs}",
         f"--ray-client-server-port={client}", "--include-dashboard=false", "--num-cpus=2",
         f"--temp-dir={temp}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        # Up once `ray status` answers and the Ray Client server accepts connections (a client that connects
        # earlier can be refused while the head is still starting: "Initialization failure from server").
        while not _head_is_up(gcs, client, env):
            assert head.poll() is None and time.monotonic() < deadline, "the Ray head did not start"
            time.sleep(1.0)
        driver = subprocess.run(
            [sys.executable, "-m", "attrprompt_builder.cli", "generate", "sst2", "--endpoint", tgi.url, "-n", "10",
             "--dedup-threshold", "off", "--ray", f"ray://127.0.0.1:{client}", "--ray-workers", "1",
             "--journal-dir", str(tmp_path / "journal"), "--cache-dir", str(tmp_path / "cache"), "-o", str(tmp_path / "out")],
            capture_output=True, text=True, env={**env, "HF_DATASETS_CACHE": str(tmp_path / "cache")}, timeout=240,
        )  # fmt: skip
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)
        shutil.rmtree(temp, ignore_errors=True)
    assert driver.returncode == 0, driver.stderr[-2000:]
    assert len(_rows(tmp_path / "out")) == 20
