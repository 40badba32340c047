"""The command line of the loopback TGI server: ``python tests/support/tgi_server.py --port 0 ...``.

Parses the flags into ``TGIServer`` knobs, prints ``URL http://...`` once listening, and serves until
SIGTERM or SIGINT. ``tgi_server.main`` passes its class in, so this module never imports ``tgi_server``
at run time (a script run by path would otherwise load that module twice).
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from tgi_behaviour import FAULT_KINDS
from tgi_protocol import DEFAULT_MODEL_ID

if TYPE_CHECKING:
    from tgi_server import TGIServer

__all__ = ["parse_faults", "run"]


def parse_faults(text: str) -> dict[str, float]:
    """``--faults`` text (``429=0.1,drop=0.02``) as kind -> rate; kinds and rates are checked by ``Behaviour``."""
    faults: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, separator, rate = item.partition("=")
        try:
            if not separator:
                raise ValueError(item)
            faults[kind.strip()] = float(rate)
        except ValueError as err:
            raise ValueError(f"--faults: {item!r} is not KIND=RATE; write e.g. 429=0.1,drop=0.02") from err
    return faults


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Loopback TGI-compatible test server; prints 'URL http://...'.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model-id", default=DEFAULT_MODEL_ID)
    timing = parser.add_mutually_exclusive_group()
    timing.add_argument("--latency", type=float, metavar="SECONDS", help="fixed delay before each successful reply")
    timing.add_argument("--latency-lognormal", type=float, nargs=2, metavar=("MEDIAN", "SIGMA"))
    parser.add_argument("--faults", default="", metavar="KIND=RATE,...", help=f"kinds: {', '.join(FAULT_KINDS)}")
    parser.add_argument("--fault-seed", type=int, default=0)
    parser.add_argument("--slow-seconds", type=float, default=3.0)
    parser.add_argument("--retry-after", type=float, default=0.0)
    parser.add_argument("--refusal-rate", type=float, default=0.0)
    parser.add_argument("--empty-rate", type=float, default=0.0)
    parser.add_argument("--duplicate-rate", type=float, default=0.0)
    parser.add_argument("--fixed-status", type=int)
    parser.add_argument("--stats-file", type=Path, help="JSON counters, rewritten atomically after every request")
    parser.add_argument(
        "--disable-grammar-support", action="store_true", help="answer a response_format with 422, as TGI started so does"
    )
    return parser


def run(argv: list[str] | None = None, *, server_class: type[TGIServer]) -> int:
    """Serve a ``server_class`` configured from ``argv`` (``sys.argv[1:]`` when None) until signalled."""
    parser = _parser()
    args = parser.parse_args(argv)
    latency = args.latency if args.latency_lognormal is None else ("lognormal", *args.latency_lognormal)
    try:
        server = server_class(
            port=args.port,
            model_id=args.model_id,
            refusal_rate=args.refusal_rate,
            empty_rate=args.empty_rate,
            duplicate_rate=args.duplicate_rate,
            faults=parse_faults(args.faults),
            fixed_status=args.fixed_status,
            latency=latency,
            slow_seconds=args.slow_seconds,
            retry_after=args.retry_after,
            fault_seed=args.fault_seed,
            record_bodies=False,  # a long-running process keeps counters only
            stats_file=args.stats_file,
            grammar_support=not args.disable_grammar_support,
        )
    except ValueError as err:
        parser.error(str(err))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server.start()
    except OSError as err:
        parser.exit(1, f"tgi_server: cannot listen on 127.0.0.1:{args.port}: {err.strerror}\n")
    print(f"URL {server.url}", flush=True)
    while not stop.wait(0.5):  # a timed wait lets the signal handler run promptly
        pass
    server.stop()
    return 0
