"""Ray builds: throughput with 1, 2 and 4 workers against the one-machine path, and the driver's memory.

Prints figures; asserts nothing. One run starts one local Ray instance in-process and a loopback
TGI-compatible server (``tests/support/tgi_server.py``) whose latency is lognormal, median 0.4 s:
slow enough that the cores are not the limit, so what is measured is how well each path keeps the
endpoint's allowed concurrency busy. Every build is ``generate_folder`` with dedup off, no card, and a
fresh journal, cache and output folder: nothing is reused, every row is paid.

Two series, because "does Ray scale?" has two honest answers and a single table would hide one:

- **fixed cap**: every build gets the same ``max_concurrency`` (64). On Ray the workers split it
  (``concurrency_shares``: 64, 32+32, 16x4), so the endpoint never sees more than 64 requests in flight.
  The endpoint's concurrency is the limit, so the expected ratio to the one-machine path is ~1: more
  workers do not make a fixed endpoint faster, and anything well below 1 is overhead of the Ray path
  (blocks, a worker waiting for the slowest reply of a block, round trips to the driver).
- **cap per worker**: ``max_concurrency`` grows with the workers (16 each), against the one-machine
  path at 16. This is what a cluster is for: more replicas behind the endpoint allow more requests in
  flight, and the rate should grow with the workers. The one-machine path could be given 64 as well (it is,
  in the first series): the point is that the Ray path turns more allowed concurrency into more rows/s.

Ratios are to the one-machine build of the same series, taken in the same run. Wall time is
``generate_folder`` end to end: it includes starting the workers (new Ray actors per build, each
importing the package), writing Parquet and ``generation.json``; "gen s" is the engine's own time
(``generation.json``'s ``wall_time_s``), which also includes waiting for the workers to be ready.

Then the driver's memory: a Ray build of ``--rows`` rows (default 200,000: sst2, 2 classes) against a
zero-latency server, 4 workers, ``max_concurrency`` 128, each size in a fresh driver process (so its peak
is its own) that joins this run's Ray instance by its address. A thread samples the driver's RSS every
0.2 s; the RSS before the build and the peak are printed with the rows/s. The zero-latency server runs in
its own process here: in the driver it would compete for the GIL and its memory would count as the driver's.
Pass several sizes (``--rows 20000 50000 200000``) to see whether the peak grows with the plan.

The "in flight" column is the mean number of requests in flight at the endpoint while sending (sampled
every 50 ms): it says whether a path keeps the allowed concurrency busy. A build during which one of this
run's Ray workers was restarted (its process died) is marked: its figure is not clean.

    PYTHONPATH=$PWD python bench/ray_scale.py [--quick] [--rows 200000] [--skip-throughput | --skip-rss]

The latest figures are in README ("Performance"). What they showed while this was built: with one
share of ``max_concurrency`` per block and two blocks in hand, a worker waited for the slowest reply of a
block before the next one came, and the Ray path kept 36-45 of 64 requests in flight against 56 on one
machine (0.62-0.69x); blocks of a quarter share, eight in hand, brought it to 56.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUPPORT = REPO / "tests" / "support"
sys.path[:0] = [str(REPO), str(SUPPORT)]  # run from a checkout; the server's modules import each other by name


@dataclass
class Run:
    path: str
    workers: int
    concurrency: int
    rows: int
    requests: int
    wall_s: float
    gen_s: float
    in_flight: float  # mean requests in flight at the endpoint while sending
    restarts: int  # worker processes restarted during the build (a death: its figures are not clean)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall_s


class _Sampler:
    """A thread calling ``sample()`` every ``interval`` seconds while the ``with`` block runs, and once at its end."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


class Watch(_Sampler):
    """Samples, while a build runs, the requests in flight at the in-process server and this process's
    Ray worker processes: more distinct ``ray::ReplyWorker`` processes than workers means a restart."""

    def __init__(self, server, interval: float = 0.05) -> None:
        super().__init__(interval)
        self.server = server
        self.counts: list[int] = []
        self.worker_pids: set[int] = set()
        self._tick = 0

    def sample(self) -> None:
        self.counts.append(self.server._in_flight._count)  # the test server's own counter (no public getter)
        self._tick += 1
        if self._tick % 4 == 0:
            self.worker_pids |= _our_worker_pids()

    @property
    def mean_in_flight(self) -> float:
        """Over the span from the first to the last sample with a request in flight (not startup, not writing)."""
        busy = [i for i, n in enumerate(self.counts) if n]
        span = self.counts[busy[0] : busy[-1] + 1] if busy else [0]
        return sum(span) / len(span)


def _our_worker_pids() -> set[int]:
    """This process's Ray workers (its local raylet is a child of this process), never another session's."""
    try:
        import psutil
    except ImportError:
        return set()
    pids = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if (child.cmdline() or [""])[0].startswith("ray::ReplyWorker"):
                pids.add(child.pid)
        except psutil.Error:
            continue
    return pids


# ---- one build ----
def build(url: str, *, preset: str, per_class: int, concurrency: int, workers: int | None) -> tuple[int, int, float, float]:
    """(kept rows, requests sent, wall seconds, engine seconds) of one fresh build; workers=None: one machine."""
    from attrprompt_builder.pipeline import generate_folder

    ray_kwargs = {} if workers is None else {"ray": True, "ray_workers": workers}
    with tempfile.TemporaryDirectory(prefix="ray-scale-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        folder = generate_folder(
            preset, root / "out", endpoint=url, samples_per_class=per_class, max_concurrency=concurrency,
            dedup_threshold="off", journal_dir=str(root / "journal"), cache_dir=str(root / "cache"), card=False,
            **ray_kwargs,
        )  # fmt: skip
        wall = time.perf_counter() - started
        stats = json.loads((Path(folder) / "generation.json").read_text())["stats"]
    return stats["kept"], stats["sent"], wall, stats["wall_time_s"]


def throughput(server, *, preset: str, per_class: int, fixed: int, per_worker: int, workers: list[int]) -> None:
    runs: dict[tuple[str, int, int], Run] = {}

    def measure(path: str, count: int, concurrency: int) -> Run:
        key = (path, count, concurrency)
        if key not in runs:  # a build both series share runs once
            with Watch(server) as watch:
                rows, sent, wall, gen = build(
                    server.url, preset=preset, per_class=per_class, concurrency=concurrency,
                    workers=count if path == "ray" else None,
                )  # fmt: skip
            restarts = max(0, len(watch.worker_pids) - count) if path == "ray" else 0
            runs[key] = Run(path, count, concurrency, rows, sent, wall, gen, watch.mean_in_flight, restarts)
            print(
                f"  done: {path} workers={count} max_concurrency={concurrency}: {rows} rows in {wall:.1f} s"
                + (f" ({restarts} worker restart(s): not a clean figure)" if restarts else ""),
                flush=True,
            )
        return runs[key]

    series = [
        (
            f"fixed cap: max_concurrency={fixed} for every build",
            [("one machine", 1, fixed)] + [("ray", n, fixed) for n in workers],
        ),
        (
            f"cap per worker: max_concurrency={per_worker} x workers",
            [("one machine", 1, per_worker)] + [("ray", n, per_worker * n) for n in workers],
        ),
    ]
    tables = []
    for title, plan in series:
        tables.append((title, [measure(*item) for item in plan]))
    for title, table in tables:
        base = table[0]
        print(f"\n{title}")
        print(
            f"{'path':<12} {'workers':>7} {'max_conc':>8} {'rows':>6} {'wall s':>6} {'gen s':>6} {'rows/s':>6} "
            f"{'req/s':>6} {'in flight':>9} {'ratio':>6}"
        )
        for run in table:
            print(
                f"{run.path:<12} {run.workers if run.path == 'ray' else '-':>7} {run.concurrency:>8} {run.rows:>6} "
                f"{run.wall_s:>6.1f} {run.gen_s:>6.1f} {run.rows_per_s:>6.1f} {run.requests / run.wall_s:>6.1f} "
                f"{run.in_flight:>9.1f} {run.rows_per_s / base.rows_per_s:>5.2f}x" + ("  *restarted" if run.restarts else "")
            )
    print(
        "in flight: mean requests in flight at the endpoint while sending (sampled every 50 ms); "
        "ratio: rows/s over the one-machine build of the same series"
    )


# ---- the driver's memory ----
def rss_mb() -> tuple[float, float]:
    """This process's RSS and its anonymous part (heap; the rest is file-backed: code, memory-mapped Arrow), MB."""
    figures = {}
    with open("/proc/self/status") as status:  # Linux; RssAnon has no portable equivalent
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon"):
                figures[name] = int(value.split()[0]) / 1024
    return figures["VmRSS"], figures.get("RssAnon", figures["VmRSS"])


class PeakRSS(_Sampler):
    """The highest RSS (and anonymous RSS) of this process, sampled by a thread every ``interval`` seconds."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(interval)
        self.samples: list[tuple[float, float]] = [rss_mb()]  # (RSS, anonymous RSS) in MB

    def sample(self) -> None:
        self.samples.append(rss_mb())

    @property
    def peak(self) -> float:
        return max(rss for rss, _ in self.samples)

    @property
    def peak_anon(self) -> float:
        return max(anon for _, anon in self.samples)

    def quarters(self) -> list[float]:
        """Peak RSS in each quarter of the build's time: flat while rows stream means bounded memory."""
        size = max(1, len(self.samples) // 4)
        return [max(rss for rss, _ in self.samples[i : i + size]) for i in range(0, len(self.samples), size)][:4]


def rss_child(args: argparse.Namespace) -> None:
    """In a fresh driver process: one Ray build of ``--child-rows`` rows; prints its figures as JSON."""
    import datasets
    import ray

    datasets.disable_progress_bars()
    ray.init(address=args.ray_address, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    import attrprompt_builder.pipeline  # noqa: F401  (imported before "before": the build's own growth is what counts)

    before, before_anon = rss_mb()
    with PeakRSS() as peak:
        rows, sent, wall, gen = build(
            args.url, preset=args.rss_preset, per_class=args.child_rows // args.rss_classes,
            concurrency=args.rss_concurrency, workers=args.rss_workers,
        )  # fmt: skip
    figures = {"rows": rows, "sent": sent, "wall": wall, "gen": gen, "before": before, "peak": peak.peak}
    figures |= {"before_anon": before_anon, "peak_anon": peak.peak_anon, "trend": peak.quarters()}
    print(json.dumps(figures))
    ray.shutdown()


def start_server_process() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, str(SUPPORT / "tgi_server.py"), "--port", "0"], stdout=subprocess.PIPE, text=True)
    line = (process.stdout.readline() if process.stdout else "").split()
    if len(line) != 2 or line[0] != "URL":
        raise SystemExit(f"the loopback server did not start: {line}")
    return process, line[1]


def driver_memory(args: argparse.Namespace, address: str) -> None:
    server, url = start_server_process()
    results = []
    try:
        for rows in args.rows:
            command = [
                sys.executable, __file__, "--child-rows", str(rows), "--ray-address", address, "--url", url,
                "--rss-workers", str(args.rss_workers), "--rss-concurrency", str(args.rss_concurrency),
            ]  # fmt: skip
            done = subprocess.run(
                command, stdout=subprocess.PIPE, text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)}
            )
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            results.append(figures)
            print(
                f"  done: {figures['rows']} rows in {figures['wall']:.1f} s, RSS {figures['before']:.0f} MB -> peak "
                f"{figures['peak']:.0f} MB",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait()
    print(
        f"\ndriver RSS, Ray build, zero-latency server, {args.rss_workers} workers, max_concurrency={args.rss_concurrency}, dedup off"
    )
    print(
        f"{'rows':>8} {'wall s':>7} {'rows/s':>7} {'RSS before':>10} {'peak':>7} {'growth':>7} {'anon before':>11} "
        f"{'anon peak':>9}  peak RSS per quarter of the build"
    )
    for f in results:
        trend = " ".join(f"{mb:.0f}" for mb in f["trend"])
        print(
            f"{f['rows']:>8} {f['wall']:>7.1f} {f['rows'] / f['wall']:>7.0f} {f['before']:>7.0f} MB {f['peak']:>4.0f} MB "
            f"{f['peak'] - f['before']:>+4.0f} MB {f['before_anon']:>8.0f} MB {f['peak_anon']:>6.0f} MB  {trend} MB"
        )
    print("anon: anonymous RSS (heap); the rest is file-backed (code, the memory-mapped Arrow cache the folder is written from)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run (< 60 s)")
    parser.add_argument("--preset", default="agnews", help="preset of the throughput builds")
    parser.add_argument("--per-class", type=int, default=600, help="rows per class of the throughput builds")
    parser.add_argument("--median", type=float, default=0.4, help="lognormal latency median, seconds")
    parser.add_argument("--sigma", type=float, default=0.5, help="lognormal latency sigma")
    parser.add_argument("--fixed", type=int, default=64, help="max_concurrency of every build in the fixed-cap series")
    parser.add_argument("--per-worker", type=int, default=16, help="max_concurrency per worker in the second series")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000], help="driver-memory build sizes (fresh driver each)")
    parser.add_argument("--rss-workers", type=int, default=4)
    parser.add_argument("--rss-concurrency", type=int, default=128)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    # The driver-memory child (run by this script, not by hand).
    parser.add_argument("--child-rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ray-address", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--rss-preset", default="sst2", help=argparse.SUPPRESS)
    parser.add_argument("--rss-classes", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_rows:
        rss_child(args)
        return
    if args.quick:
        args.per_class, args.fixed, args.per_worker, args.workers, args.rows = 12, 8, 4, [1, 2], [1_000]

    import datasets
    import ray

    datasets.disable_progress_bars()
    started = time.perf_counter()
    # Our own local instance (never address="auto": other clusters may run on this machine); the workers
    # inherit this process's PYTHONPATH, so the checkout they import is this one.
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    ray.init(include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        address = ray.get_runtime_context().gcs_address
        print(
            f"Ray {ray.__version__}, local instance {address}, {ray.cluster_resources().get('CPU', 0):.0f} CPUs; {os.cpu_count()} cores"
        )
        if not args.skip_throughput:
            from tgi_server import TGIServer

            with TGIServer(latency=("lognormal", args.median, args.sigma), record_bodies=False) as server:
                print(
                    f"throughput: {args.preset}, {args.per_class} rows per class, dedup off, latency lognormal "
                    f"(median {args.median} s, sigma {args.sigma}), server in this process",
                    flush=True,
                )
                throughput(
                    server, preset=args.preset, per_class=args.per_class, fixed=args.fixed,
                    per_worker=args.per_worker, workers=args.workers,
                )  # fmt: skip
        if not args.skip_rss:
            print(f"\ndriver memory: {', '.join(map(str, args.rows))} rows", flush=True)
            driver_memory(args, address)
    finally:
        ray.shutdown()
    print(
        f"\ntotal {time.perf_counter() - started:.0f} s on {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f} at the end)"
    )


if __name__ == "__main__":
    main()
