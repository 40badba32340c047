"""Issue 15's acceptance figures for the MiniLM encoder and ``deduplicate()``, measured side by side in one process.

On the real English paragraphs of ``dedup_threshold.real_paragraphs`` with planted light-edit copies
("mixed"), the same texts each time, best of ``--repeat`` alternating runs:

- reference: a plain transformers fp32 loop, texts in dataset order, batch 32 (what every machine can run);
- raw fp32 encode: our encoder with ``precision="fp32"`` (batches cut from texts sorted by token length);
- best encode: our encoder with ``precision="auto"`` (bf16 where the CPU has AVX512-BF16/AMX, or a GPU);
- sentence-transformers ``encode()`` (fp32, and bf16 weights) when it is installed;
- ``deduplicate(ds, embedder=<MiniLM folder>)`` end to end, and the streaming stage (``check`` per 256), beside
  the best encoder fed the same 256-text windows (what the window costs, apart from the stage).

Fidelity: the lowest cosine between the best encode's vectors and fp32's, and the precision/recall of
``deduplicate`` on the threshold benchmark's held-out half (planted copies, three edit mixes) with
"auto" against "fp32". Targets: deduplicate >= 4.5 x the reference and >= 0.9 x the best encode;
cosine >= 0.999; precision and recall within 0.005. Fidelity failures exit 1; throughput targets
only with ``--strict`` (they need cores no other work shares).
"""

from __future__ import annotations

import os
import time
from typing import Any

import datasets
import numpy as np
from dedup_threshold import MIXES, planted, real_paragraphs, split_halves

from attrprompt_builder.dataset.deduplicate import deduplicate
from attrprompt_builder.filters.dedup.embedders import load_embedder
from attrprompt_builder.filters.dedup.filter import NearDuplicateFilter
from attrprompt_builder.filters.dedup.transformer import cpu_has_native_bf16

TARGET_VS_REFERENCE = 4.5
TARGET_VS_BEST = 0.9
MIN_COSINE = 0.999
MAX_SCORE_CHANGE = 0.005


def reference_encode(model_path: str, texts: list[str]) -> np.ndarray:
    """The plain loop: tokenizer + forward + mean pooling, fp32, batch 32, texts in the order given."""
    import torch

    embedder = load_embedder(model_path, precision="fp32")
    tokenizer, model = embedder._tokenizer, embedder._model
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), 32):
            batch = tokenizer(texts[start : start + 32], padding=True, truncation=True, max_length=256, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            out.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
    return np.concatenate(out)


def sentence_transformers_runs(model_path: str) -> dict[str, Any]:
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return {}
    fp32 = SentenceTransformer(model_path, device="cpu")
    bf16 = SentenceTransformer(model_path, device="cpu").to(torch.bfloat16)
    return {
        "sentence-transformers fp32": lambda texts: fp32.encode(texts, batch_size=32),
        "sentence-transformers bf16 weights": lambda texts: bf16.encode(texts, batch_size=32),
    }


def streaming(model_path: str, texts: list[str]) -> None:
    dedup = NearDuplicateFilter(embedder=model_path)
    for start in range(0, len(texts), 256):
        dedup.check(texts[start : start + 256], ["all"] * len(texts[start : start + 256]))


def scores(held_out: list[str], model_path: str, precision: str) -> dict[str, tuple[float, float]]:
    result = {}
    for mix in MIXES:
        texts, is_copy = planted(held_out, mix, seed=11)
        dataset = datasets.Dataset.from_dict({"text": texts, "row": list(range(len(texts)))})
        kept = set(deduplicate(dataset, embedder=model_path, embed_precision=precision, by=None)["row"])
        dropped = [row for row in range(len(texts)) if row not in kept]
        hits = sum(is_copy[row] for row in dropped)
        result[mix] = (hits / max(1, len(dropped)), hits / max(1, sum(is_copy)))
    return result


def run(model_path: str, *, quick: bool, repeat: int, strict: bool) -> int:
    datasets.disable_progress_bars()
    corpus = real_paragraphs()
    originals = [paragraph for _, paragraph in corpus][: 200 if quick else None]
    texts, _ = planted(originals, "mixed", seed=3)
    best = load_embedder(model_path, precision="auto")
    exact = load_embedder(model_path, precision="fp32")
    dataset = datasets.Dataset.from_dict({"text": texts})
    runs: dict[str, Any] = {
        "reference: transformers fp32, dataset order, batch 32": lambda t: reference_encode(model_path, t),
        "raw fp32 encode (sorted by tokens)": exact.encode,
        f"best encode ({best.compute} on {best.device})": best.encode,
        **sentence_transformers_runs(model_path),
        "deduplicate() end to end": lambda t: deduplicate(dataset, embedder=model_path, by=None),
        "streaming stage: check() per 256": lambda t: streaming(model_path, t),
        # The stage's own cost apart from its window: the best encoder fed the same 256-text windows.
        "best encode per 256 (the stage's window, no dedup)": lambda t: [
            best.encode(t[i : i + 256]) for i in range(0, len(t), 256)
        ],
    }
    for fn in runs.values():
        fn(texts[:64])  # warm-up: first-call allocations and kernel selection are not throughput
    rates: dict[str, float] = {}
    for _ in range(repeat):
        for name, fn in runs.items():
            started = time.perf_counter()
            fn(texts)
            rates[name] = max(rates.get(name, 0.0), len(texts) / (time.perf_counter() - started))
    names = list(runs)
    reference, best_name, dedup_name = rates[names[0]], names[2], "deduplicate() end to end"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"MiniLM on {len(texts)} real paragraphs (+ planted copies), {os.cpu_count()} CPUs, native bf16: "
        f"{cpu_has_native_bf16()}, load average {load:.1f} (figures need cores no other work shares)"
    )
    for name in names:
        print(f"  {name:<58} {rates[name]:8.1f} texts/s  {rates[name] / reference:5.2f} x reference")
    cosine = float(np.min(np.sum(best.encode(texts) * reference_encode(model_path, texts), axis=1)))
    vs_reference = rates[dedup_name] / reference
    vs_best = rates[dedup_name] / rates[best_name]
    _, held_out = split_halves(corpus)
    held_out = held_out[: 120 if quick else None]
    fast, fp32 = scores(held_out, model_path, "auto"), scores(held_out, model_path, "fp32")
    change = max(abs(a - b) for mix in MIXES for a, b in zip(fast[mix], fp32[mix]))
    checks = [
        (
            f"deduplicate() >= {TARGET_VS_REFERENCE} x reference",
            vs_reference >= TARGET_VS_REFERENCE,
            f"{vs_reference:.2f} x",
            strict,
        ),
        (f"deduplicate() >= {TARGET_VS_BEST} x best encode", vs_best >= TARGET_VS_BEST, f"{vs_best:.2f} x", strict),
        (f"best encode cosine to fp32 >= {MIN_COSINE}", cosine >= MIN_COSINE, f"min {cosine:.6f}", True),
        (
            f"held-out precision/recall auto vs fp32 within {MAX_SCORE_CHANGE}",
            change <= MAX_SCORE_CHANGE,
            "; ".join(f"{mix} P {fast[mix][0]:.3f}/{fp32[mix][0]:.3f} R {fast[mix][1]:.3f}/{fp32[mix][1]:.3f}" for mix in MIXES),
            True,
        ),
    ]
    failed = 0
    for label, passed, figure, binding in checks:
        print(f"  {'PASS' if passed else 'FAIL'}  {label}: {figure}")
        failed += int(binding and not passed)
    return 1 if failed else 0
