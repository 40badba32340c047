"""The transformer encoder (MiniLM by default), run at the limit of the machine it is on.

Three things decide its speed (``bench/dedup.py`` measures each against a plain transformers loop):

- **Padding.** Every text is tokenized once, without padding; batches are then cut from the texts
  sorted by *token* length over the whole call, so a batch pads only to its own longest text. A
  batch holds about ``_TOKEN_BUDGET`` real tokens: many short texts or a few long ones.
- **Precision.** ``precision="auto"`` runs the model in bfloat16 (weights and activations) where
  the CPU multiplies bf16 natively (AVX512-BF16 or AMX: /proc/cpuinfo flags), and on a CUDA GPU
  (bf16, or fp16 where the GPU lacks bf16); the pooling and normalisation stay fp32. Vectors stay
  within cosine 0.9999 of fp32 on the threshold benchmark's corpus. Elsewhere, and with
  ``precision="fp32"``, everything is fp32. bf16 weights beat ``torch.autocast`` here (autocast
  converts every activation at every layer: 0.6-0.8 x as fast in ``bench/dedup.py``'s A/B) and
  matched sentence-transformers' own bf16 path only with our length-sorted batches.
- **Device.** A CUDA GPU is used when torch sees one.

Pooling is the model's training recipe for sentence-transformers models: the mean over real
tokens, L2-normalised.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from attrprompt_builder.errors import ConfigError, MissingDependencyError

__all__ = ["PRECISIONS", "TransformerEmbedder", "check_precision", "cpu_has_native_bf16"]

PRECISIONS = ("auto", "fp32")
_MAX_LENGTH = 256  # all-MiniLM-L6-v2 was trained on 256 tokens; longer input only adds noise
# Padded tokens per forward call, measured on the threshold corpus (~64 tokens a text, 2 shared cores):
# fp32 was fastest at 8k (1.0 / 1.2 / 0.95 x at 4k / 8k / 16k); bf16 weights at 2k-4k (16k: 0.6 x).
_TOKEN_BUDGET = {"fp32": 8192, "bf16": 4096, "fp16": 4096}
_MAX_BATCH = 256
_WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(
            f"embed_precision: got {precision!r}; use 'auto' (bf16 where the CPU or GPU supports it) or 'fp32' (exact)"
        )
    return precision


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX-BF16).

    Without it, bf16 on the CPU is emulated and slower than fp32. Read from /proc/cpuinfo; other
    systems report no native bf16, so they run fp32.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"avx512_bf16", "amx_bf16"} & flags)
    except OSError:
        pass
    return False


class TransformerEmbedder:
    """A transformer encoder, mean-pooled over real tokens and L2-normalised.

    ``precision``: "auto" (bf16 where the hardware has it) or "fp32". ``compute`` is what runs
    here ("bf16", "fp16" or "fp32") and ``identity`` names the vectors this instance produces
    (model, its files, compute precision, pooling): the key of stored vectors.
    """

    kind = "transformer"

    def __init__(self, model: str, *, precision: str = "auto", max_length: int = _MAX_LENGTH) -> None:
        check_precision(precision)
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as err:
            raise MissingDependencyError(
                "the MiniLM embedder needs torch: pip install 'attrprompt-builder[local]' or pass embedder='ngram'"
            ) from err
        from attrprompt_builder.filters.dedup.embedders import unloadable_model_message
        from attrprompt_builder.hub import hub_reachable

        self.name = model
        self.precision = precision
        self.max_length = max_length
        self._torch = torch
        # A folder needs no Hub; a Hub id is read from the local cache alone when the Hub is out of reach.
        reachable = Path(model).is_dir() or hub_reachable()
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(model, local_files_only=not reachable)
            self._model = AutoModel.from_pretrained(model, local_files_only=not reachable)
        except (OSError, ValueError) as err:
            raise MissingDependencyError(unloadable_model_message(model, hub_answered=reachable)) from err
        self._model.eval()
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.compute = self._compute_dtype_name()
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.compute]
        self._model.to(device=self.device, dtype=dtype)
        self.dim = int(self._model.config.hidden_size)
        self._pad_id = int(self._tokenizer.pad_token_id or 0)
        self.identity = f"{model}@{_model_fingerprint(model)}:{self.compute}:mean{max_length}"

    def _compute_dtype_name(self) -> str:
        if self.precision == "fp32":
            return "fp32"
        if self.device == "cuda":
            return "bf16" if self._torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_native_bf16() else "fp32"

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = self._tokenizer(
            list(texts), truncation=True, max_length=self.max_length, return_attention_mask=False, return_token_type_ids=False
        )["input_ids"]
        lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(lengths, kind="stable")  # by token length over the whole call; restored below
        torch = self._torch
        with torch.inference_mode():
            for rows in _batches(lengths[order], budget=_TOKEN_BUDGET[self.compute]):
                picked = order[rows]
                out[picked] = self._forward([ids[i] for i in picked.tolist()], int(lengths[picked[-1]]))
        return out

    def _forward(self, rows: list[list[int]], width: int) -> np.ndarray:
        torch = self._torch
        input_ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        ids_t = torch.from_numpy(input_ids).to(self.device)
        mask_t = torch.from_numpy(mask).to(self.device)
        hidden = self._model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state.float()
        weights = mask_t.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, p=2.0, dim=1).cpu().numpy()

    def __repr__(self) -> str:
        return f"TransformerEmbedder({self.name!r}, dim={self.dim}, compute={self.compute!r}, device={self.device!r})"


def _batches(sorted_lengths: np.ndarray, *, budget: int) -> Iterator[slice]:
    """Consecutive slices of texts sorted by length, each padding to at most ``budget`` tokens."""
    count = len(sorted_lengths)
    start = 0
    while start < count:
        end = start + 1
        while end < count and end - start < _MAX_BATCH and (end - start + 1) * int(sorted_lengths[end]) <= budget:
            end += 1
        yield slice(start, end)
        start = end


def _model_fingerprint(model: str) -> str:
    """A short hash of the model's config and the sizes of its weight files: other weights, other vectors."""
    folder = Path(model)
    if not folder.is_dir():
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model, "config.json")
        folder = Path(found).parent if isinstance(found, str) else folder
    digest = hashlib.blake2b(digest_size=6)
    config = folder / "config.json"
    if config.is_file():
        digest.update(json.dumps(json.loads(config.read_text(encoding="utf-8")), sort_keys=True).encode())
    for pattern in _WEIGHT_FILES:
        for path in sorted(folder.glob(pattern)):
            digest.update(f"{path.name}:{path.stat().st_size}".encode())
    return digest.hexdigest()
