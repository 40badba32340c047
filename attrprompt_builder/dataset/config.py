"""``AttrPromptConfig``: the builder's config, validated like datasets' packaged builders do."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from attrprompt_builder.client.backends import BackendSpec
from attrprompt_builder.client.types import SamplingParams
from attrprompt_builder.errors import ConfigError
from attrprompt_builder.generation.prompts import PROMPTING_MODES
from attrprompt_builder.generation.sampling import SAMPLING_STRATEGIES
from attrprompt_builder.recipe.model import Recipe, load_recipe
from attrprompt_builder.recipe.presets import PRESET_NAMES, load_preset

__all__ = ["AttrPromptConfig", "BACKENDS"]

BACKENDS = ("auto", "endpoint", "providers", "transformers")

# Settings that change what rows a build produces; the rest (concurrency, timeouts, budgets, where
# the journal lives) only change how it gets there, so they stay out of the cache key.
_DATA_FIELDS = (
    "samples_per_class",
    "seed",
    "sampling",
    "prompting",
    "ascii_squeeze",
    "dedup_threshold",
    "embedder",
    "drop_cross_class_duplicates",
)


def _fail(field: str, given: Any, fix: str) -> ConfigError:
    return ConfigError(f"{field}: got {given!r}; {fix}")


@dataclass
class AttrPromptConfig(datasets.BuilderConfig):
    """What to generate (a preset or a recipe file) and how (endpoint, model, sampling, budgets).

    ``preset`` names a packaged recipe (the paper's datasets); ``config`` is the path of a recipe
    YAML file. Sampling parameters left as None take the recipe's defaults.
    """

    preset: str | None = None
    config: str | None = None
    endpoint: str | list[str] | None = None
    model: str | None = None
    backend: str = "auto"
    provider: str | None = None
    samples_per_class: int = 10
    seed: int = 0
    max_concurrency: int = 16
    temperature: float | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None
    sampling: str = "uniform"
    prompting: str = "attributed"
    ascii_squeeze: bool = False
    dedup_threshold: float | str | None = "auto"
    embedder: str | None = None
    drop_cross_class_duplicates: bool = False
    request_timeout: float = 300.0
    max_attempts: int = 6
    max_errors: int | None = None
    max_draws_per_class: int | None = None
    max_requests: int | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    price_in: float | None = None
    price_out: float | None = None
    journal_dir: str | None = None
    batch_size: int = 8
    license: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.validate()

    # -- validation -----------------------------------------------------------------------------
    def validate(self) -> None:
        """Check every field; called again after ``load_dataset`` kwargs override a preset's fields."""
        if self.preset is None and self.config is None:
            if self.name in PRESET_NAMES:
                self.preset = self.name
            elif self.name != "default" and self.name.endswith((".yaml", ".yml")):
                self.config = self.name
        if self.preset is not None and self.preset not in PRESET_NAMES:
            raise _fail("preset", self.preset, f"use one of {', '.join(PRESET_NAMES)} or pass config='task.yaml'")
        if self.config is not None and self.name == "default":
            self.name = self.recipe.name  # loads and validates the recipe file now, not mid-build
        self._check_int("samples_per_class", minimum=1)
        self._check_int("seed", minimum=0)
        self._check_int("max_concurrency", minimum=1, maximum=4096)
        self._check_int("max_attempts", minimum=1, maximum=100)
        self._check_int("batch_size", minimum=1)
        for name in ("max_new_tokens", "max_errors", "max_draws_per_class", "max_requests", "max_tokens"):
            self._check_int(name, minimum=1, optional=True)
        for name in ("max_cost", "price_in", "price_out", "request_timeout"):
            self._check_number(name, minimum=0.0, optional=True)
        self._check_number("temperature", minimum=0.0, maximum=5.0, optional=True)
        if self.top_p is not None and not (isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1):
            raise _fail("top_p", self.top_p, "use a number in (0, 1], e.g. 1.0")
        if self.sampling not in SAMPLING_STRATEGIES:
            raise _fail("sampling", self.sampling, f"use one of {', '.join(SAMPLING_STRATEGIES)}")
        if self.prompting not in PROMPTING_MODES:
            raise _fail("prompting", self.prompting, f"use one of {', '.join(PROMPTING_MODES)}")
        if self.backend not in BACKENDS:
            raise _fail("backend", self.backend, f"use one of {', '.join(BACKENDS)}")
        if self.max_cost is not None and self.price_in is None and self.price_out is None:
            raise _fail("max_cost", self.max_cost, "also pass price_in and price_out (per 1k tokens)")
        threshold = self.dedup_threshold
        if threshold is not None and threshold not in ("auto", "off"):
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
                raise _fail("dedup_threshold", threshold, "use a cosine similarity in (0, 1], 'auto', or None/'off' to disable")
        self._check_endpoints()
        if self.endpoints or self.model or self.provider or self.backend != "auto":
            self.backend_spec()  # an inconsistent choice fails now; "nothing chosen yet" fails at build time

    def _check_int(self, name: str, *, minimum: int, maximum: int | None = None, optional: bool = False) -> None:
        value = getattr(self, name)
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum else f">= {minimum}"
            raise _fail(name, value, f"use a whole number {bound}")

    def _check_number(self, name: str, *, minimum: float, maximum: float | None = None, optional: bool = False) -> None:
        value = getattr(self, name)
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < minimum or (
            maximum is not None and value > maximum
        ):
            bound = f"between {minimum:g} and {maximum:g}" if maximum is not None else f">= {minimum:g}"
            raise _fail(name, value, f"use a number {bound}")

    def _check_endpoints(self) -> None:
        for url in self.endpoints:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise _fail("endpoint", url, "use a base URL such as http://localhost:8080 (TGI) or http://host:8000/v1 (vLLM)")

    # -- derived values -------------------------------------------------------------------------
    @property
    def endpoints(self) -> tuple[str, ...]:
        if self.endpoint is None:
            return ()
        if isinstance(self.endpoint, str):
            return (self.endpoint,)
        return tuple(self.endpoint)

    @property
    def recipe(self) -> Recipe:
        # Loaded on first use: the eight preset configs exist at import time and parsing them all is slow.
        cached = self.__dict__.get("_recipe")
        if cached is None:
            if self.preset is not None:
                cached = load_preset(self.preset)
            elif self.config is not None:
                cached = load_recipe(Path(self.config).expanduser())
            else:
                raise ConfigError(
                    f"config: no recipe given; pass a preset name ({', '.join(PRESET_NAMES)}) or config='task.yaml'"
                )
            self.__dict__["_recipe"] = cached
        return cached

    def backend_spec(self) -> BackendSpec:
        kind = self.backend
        if kind == "auto":
            kind = "endpoint" if self.endpoints else ("providers" if self.provider else "transformers")
        if kind == "endpoint" and not self.endpoints:
            raise _fail("endpoint", self.endpoint, "pass endpoint='http://host:port' for backend='endpoint'")
        if kind in ("providers", "transformers") and not self.model:
            hint = "a Hub model id" if kind == "providers" else "a chat model's Hub id or local folder"
            raise _fail("model", self.model, f"pass model= ({hint}) for backend={kind!r}, or an endpoint= URL")
        if kind != "endpoint" and self.endpoints:
            raise _fail("endpoint", self.endpoint, f"backend={kind!r} does not use an endpoint; drop one of them")
        return BackendSpec(
            kind=kind,
            endpoints=self.endpoints,
            model=self.model,
            provider=self.provider,
            request_timeout=self.request_timeout,
            batch_size=self.batch_size,
        )

    def sampling_params(self) -> SamplingParams:
        defaults = self.recipe.generation
        return SamplingParams(
            temperature=defaults.temperature if self.temperature is None else float(self.temperature),
            top_p=defaults.top_p if self.top_p is None else float(self.top_p),
            max_new_tokens=defaults.max_new_tokens if self.max_new_tokens is None else int(self.max_new_tokens),
        )

    def resolved_dedup_threshold(self) -> float | None:
        if self.dedup_threshold in (None, "off"):
            return None
        if self.dedup_threshold != "auto":
            return self.dedup_threshold  # type: ignore[return-value]
        from attrprompt_builder.filters.dedup.filter import (  # measured defaults (bench/dedup_threshold.py)
            MINILM_THRESHOLD,
            NGRAM_THRESHOLD,
        )

        return NGRAM_THRESHOLD if self.embedder == "ngram" else MINILM_THRESHOLD

    def create_config_id(self, config_kwargs: dict, custom_features: datasets.Features | None = None) -> str:
        """Cache key: the recipe's content and every setting that changes the rows, nothing else."""
        try:
            backend = self.backend_spec().identity
        except ConfigError:
            backend = None  # inspecting features needs no backend; building does and fails clearly
        payload = {
            "recipe": self.recipe.fingerprint,
            "backend": backend,
            "model": self.model,
            "params": self.sampling_params().as_dict(),
            **{name: getattr(self, name) for name in _DATA_FIELDS},
        }
        if custom_features is not None:
            payload["features"] = custom_features.to_dict()
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return f"{self.recipe.name}-{digest}"
