"""``AttrPromptConfig``: the builder's config, validated like datasets' packaged builders do.

Each field is the one declaration of a build option: its type and default here, its help text and
how the command line spells it in the ``Option`` metadata (``options``; ``attrprompt generate`` derives its flags
from these fields, so a new option is one new field plus the code that uses it).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import typing
from dataclasses import Field, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import datasets

from attrprompt_builder.client.backends import BACKENDS, DEFAULT_MODEL, BackendSpec, endpoint_urls
from attrprompt_builder.client.types import SamplingParams
from attrprompt_builder.dataset.options import (
    PRICED,
    PROMPTS,
    check_paper_settings,
    check_value,
    invalid,
    option,
    parse_dedup_threshold,
)
from attrprompt_builder.errors import ConfigError
from attrprompt_builder.filters.dedup.transformer import PRECISIONS as EMBED_PRECISIONS
from attrprompt_builder.generation.budget import BudgetSpec
from attrprompt_builder.generation.plan import ClusterSpec, DedupSpec, RetrySpec, RunSettings
from attrprompt_builder.generation.prompts import PROMPTING_MODES
from attrprompt_builder.generation.sampling import SAMPLING_STRATEGIES
from attrprompt_builder.recipe.model import FIDELITIES, Recipe, load_recipe
from attrprompt_builder.recipe.presets import PRESET_NAMES, load_preset
from attrprompt_builder.verify.judge import ADHERENCE_SAMPLE, JudgeSpec
from attrprompt_builder.verify.label_check import MIN_ROWS_PER_CLASS

__all__ = ["AttrPromptConfig", "check_options", "field_types", "option_fields"]

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_Spec = TypeVar("_Spec", bound="DataclassInstance")

_RECIPE = "a preset name (see `attrprompt presets`) or a recipe YAML path"


@dataclass
class AttrPromptConfig(datasets.BuilderConfig):
    """What to generate (a preset or a recipe file) and how (endpoint, model, sampling, budgets).

    ``preset`` names a packaged recipe (the paper's datasets); ``config`` is the path of a recipe
    YAML file. Sampling parameters left as None take the recipe's defaults.
    """

    # The CLI takes either as one argument; make_builder tells them apart.
    preset: str | None = option(None, _RECIPE, flags=("preset_or_recipe",), commands=PROMPTS)
    config: str | None = option(None, _RECIPE, flags=("preset_or_recipe",), commands=PROMPTS)
    endpoint: str | list[str] | None = option(  # noqa: RUF009 (option returns a dataclasses.field)
        None, "base URL of a TGI/vLLM/OpenAI-compatible server; repeat for replicas"
    )
    model: str | None = option(
        None,
        "served model name, Hub id (providers) or local folder/Hub id (transformers); with no --endpoint or "
        f"--provider the transformers backend runs {DEFAULT_MODEL} (Apache-2.0, CPU is enough) on this machine",
    )
    backend: str = option(
        "auto",
        "where the model runs; auto: endpoint if --endpoint, providers if --provider, else transformers",
        choices=BACKENDS,
    )
    provider: str | None = option(None, "HF Inference Providers provider, e.g. 'auto'")
    samples_per_class: int = option(
        10,
        "kept rows per class (exact: refusals and failures are replaced)",
        short="-n",
        commands=PROMPTS,
        minimum=1,
        changes_rows=True,
    )
    seed: int = option(0, "seed of the attribute draws and of every request", commands=PROMPTS, minimum=0, changes_rows=True)
    max_concurrency: int = option(16, "requests in flight per endpoint (per process with --num-proc)", minimum=1, maximum=4096)
    temperature: float | None = option(None, "sampling temperature (default: the recipe's, 1.0)", minimum=0.0, maximum=5.0)
    top_p: float | None = option(None, "nucleus sampling top_p (default: the recipe's, 1.0)")
    max_new_tokens: int | None = option(None, "longest reply in tokens (default: the recipe's)", commands=PROMPTS, minimum=1)
    sampling: str = option(
        "uniform",
        "uniform: the paper's independent draws; balanced: cycle each dimension's values",
        choices=SAMPLING_STRATEGIES,
        commands=PROMPTS,
        changes_rows=True,
    )
    prompting: str = option(
        "attributed",
        "attributed: the paper's AttrPrompt; simple: the SimPrompt baseline (domain and class only)",
        choices=PROMPTING_MODES,
        commands=PROMPTS,
        changes_rows=True,
    )
    fidelity: str = option(
        "default",
        "paper: the AttrPrompt paper's code exactly (its wording, cleaning, refusal phrases, max_tokens, arxiv "
        "loop; no dedup; --paper for short); default: the same method with the fixes that are simply better",
        choices=FIDELITIES,
        commands=PROMPTS,
        changes_rows=True,
    )
    ascii_squeeze: bool = option(
        False,
        "the paper's cleaning of replies: only ASCII letters, digits and (),.!?\"' kept (always on with --paper)",
        changes_rows=True,
    )
    dedup_threshold: float | str | None = option(
        "auto",
        "near-duplicate cosine similarity in (0, 1], 'auto' (the embedder's measured default) or 'off'",
        parse=parse_dedup_threshold,
        changes_rows=True,
    )
    embedder: str | None = option(None, "dedup embedder: model folder/Hub id, or 'ngram' (default: MiniLM)", changes_rows=True)
    drop_cross_class_duplicates: bool = option(
        False,
        "drop a reply that near-duplicates another class's row (the earlier class keeps it) instead of flagging it",
        changes_rows=True,
    )
    embed_precision: str = option(
        "auto",
        "dedup encoder arithmetic: auto (bf16 where the CPU or GPU has it, else fp32; ~2x faster) or fp32 (exact)",
        choices=EMBED_PRECISIONS,
        changes_rows=True,
    )
    label_check: str | None = option(
        None,
        "check each row's label: 'classifier' (embeddings + confident learning, no LLM) or 'judge' (an LLM judge)",
        choices=("classifier", "judge"),
        commands=PRICED,  # estimate counts the judge's requests
        changes_rows=True,
    )
    drop_label_issues: bool = option(
        False,
        "with --label-check classifier: drop flagged rows and generate replacements until quotas are met",
        changes_rows=True,
    )
    on_mismatch: str = option(
        "drop",
        "a row failing the label check: drop (its class draws again) or flag (keep it, the judged label(s) in its "
        "label_check column)",
        choices=("drop", "flag"),
        changes_rows=True,
    )
    judge_endpoint: str | list[str] | None = option(  # noqa: RUF009 (option returns a dataclasses.field)
        None, "base URL of the judge's server (default: the build's own backend); repeat for replicas"
    )
    judge_model: str | None = option(
        None,
        "the judge's model (default: the build's; with no --judge-endpoint or "
        "--judge-provider, served by the build's endpoint or provider)",
    )
    judge_provider: str | None = option(None, "HF Inference Providers provider of the judge, e.g. 'auto'")
    adherence_sample: int | None = option(
        None,
        "kept rows whose other dimensions (subtopic, style, ...) the judge checks with yes/no questions "
        f"(default: {ADHERENCE_SAMPLE} when a judge is configured, else 0)",
        commands=PRICED,
        minimum=0,
    )
    request_timeout: float = option(300.0, "seconds to wait for one reply (0: no limit)", minimum=0.0)
    first_request_timeout: float = option(
        60.0,
        "seconds to wait for an endpoint's first reply before trying another replica or giving up "
        "(it shows the endpoint answers at all; later replies get --request-timeout)",
        minimum=0.0,
    )
    max_attempts: int = option(6, "attempts per request before it counts as failed", minimum=1, maximum=100)
    max_errors: int | None = option(None, "failed requests that stop the build (default: max(100, rows planned))", minimum=1)
    max_draws_per_class: int | None = option(
        None,
        "draws per class before a class that cannot fill its quota stops the build (default: 3 x its rows + 20)",
        minimum=1,
    )
    max_requests: int | None = option(None, "stop before sending more requests than this; rerun to continue", minimum=1)
    max_tokens: int | None = option(None, "stop once this many tokens are spent; rerun to continue", minimum=1)
    max_cost: float | None = option(None, "stop once this cost is reached (needs --price-in/--price-out)", minimum=0.0)
    price_in: float | None = option(None, "price per 1k input tokens", commands=PRICED, minimum=0.0)
    price_out: float | None = option(None, "price per 1k output tokens", commands=PRICED, minimum=0.0)
    journal_dir: str | None = option(None, "folder of the journal of paid replies (default: beside the datasets cache)")
    batch_size: int = option(8, "batch size of the transformers backend", minimum=1)
    ray: str | bool | None = option(
        None,
        "build on a Ray cluster: host:port of its head, ray://host:10001, or auto (no value: the running cluster, "
        "else a local one); the rows are those of a one-machine build",
        const="auto",
        metavar="ADDRESS",
    )
    ray_workers: int | None = option(
        None, "Ray workers (default: one per core of the cluster, per GPU for a local model)", minimum=1
    )
    replies_dir: str | None = option(
        None, "where Ray workers persist paid replies: storage every node can write (default: OUTPUT/.attrprompt-replies)"
    )
    license: str | None = option(None, "override the recipe's license in the card")

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
            raise invalid("preset", self.preset, f"use one of {', '.join(PRESET_NAMES)} or pass config='task.yaml'")
        if self.config is not None and self.name == "default":
            self.name: str = self.recipe.name  # loads and validates the recipe file now, not mid-build
        for each in option_fields():
            check_value(each, getattr(self, each.name), field_types(each.name))
        if self.top_p is not None and not (isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1):
            raise invalid("top_p", self.top_p, "use a number in (0, 1], e.g. 1.0")
        if self.max_cost is not None and self.price_in is None and self.price_out is None:
            raise invalid("max_cost", self.max_cost, "also pass price_in and price_out (per 1k tokens)")
        threshold: Any = self.dedup_threshold  # whatever the caller passed, checked here
        is_number = isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
        if threshold is not None and threshold not in ("auto", "off") and (not is_number or not 0 < threshold <= 1):
            raise invalid("dedup_threshold", threshold, "use a cosine similarity in (0, 1], 'auto', or None/'off' to disable")
        if self.fidelity == "paper":
            check_paper_settings(self, self.recipe)
        self._validate_label_check()
        if endpoint_urls(self.endpoint) or self.model or self.provider or self.backend != "auto":
            self.backend_spec()  # an inconsistent choice fails now (nothing chosen: the default model)
        if self.on_mismatch != "drop" and self.label_check != "judge":
            raise invalid("on_mismatch", self.on_mismatch, "it acts on the LLM judge: also pass label_check='judge'")
        self.judge_spec()  # a judge endpoint, model or provider that cannot work fails now
        self._validate_ray()

    def _validate_ray(self) -> None:
        if self.ray is True:
            self.ray = "auto"
        elif self.ray is False:
            self.ray = None
        if self.ray is not None and (not isinstance(self.ray, str) or not self.ray.strip()):
            raise invalid("ray", self.ray, "pass True (or 'auto'), host:port of a Ray head, or 'ray://host:10001'")
        judge = self.judge_spec()
        if self.ray is not None and judge.enabled and judge.backend is None and self.max_concurrency < 2:
            raise invalid(
                "max_concurrency",
                self.max_concurrency,
                "on Ray the judge (on the driver) and the workers share the endpoint's cap: use 2 or more",
            )
        for name in ("ray_workers", "replies_dir"):
            if getattr(self, name) is not None and self.ray is None:
                raise invalid(name, getattr(self, name), "it applies to Ray builds: also pass ray=True (CLI: --ray)")

    def _validate_label_check(self) -> None:
        if not isinstance(self.drop_label_issues, bool):
            raise invalid("drop_label_issues", self.drop_label_issues, "use True or False")
        if self.drop_label_issues and self.label_check != "classifier":
            raise invalid("drop_label_issues", True, "also pass label_check='classifier' (CLI: --label-check classifier)")
        if self.label_check == "classifier" and self.samples_per_class < MIN_ROWS_PER_CLASS:
            raise invalid(
                "label_check",
                "classifier",
                f"the classifier check holds rows out fold by fold: use samples_per_class >= {MIN_ROWS_PER_CLASS}",
            )

    # -- derived values -------------------------------------------------------------------------
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
        return BackendSpec.resolve(
            backend=self.backend,
            endpoint=self.endpoint,
            model=self.model,
            provider=self.provider,
            request_timeout=self.request_timeout,
            batch_size=self.batch_size,
        )

    def judge_spec(self) -> JudgeSpec:
        """The judge: the build's own backend unless judge_endpoint/judge_provider name another (judge_model: its model)."""
        elsewhere = bool(endpoint_urls(self.judge_endpoint)) or self.judge_provider is not None
        backend = None
        if elsewhere or self.judge_model is not None:
            try:
                backend = BackendSpec.resolve(
                    backend="auto" if elsewhere else self.backend,
                    endpoint=self.judge_endpoint if elsewhere else self.endpoint,
                    model=self.judge_model,
                    provider=self.judge_provider if elsewhere else self.provider,
                    request_timeout=self.request_timeout,
                    batch_size=self.batch_size,
                )
            except ConfigError as err:  # the same rules as the build's backend, named by the judge's options
                names, _, rest = str(err).partition(": ")
                rest = re.sub(r"(?<![\w-])(endpoint|model|provider)=", r"judge_\1=", rest)
                raise ConfigError(" + ".join(f"judge_{name}" for name in names.split(" + ")) + f": {rest}") from err
        return JudgeSpec.resolve(
            label_check=self.label_check,
            on_mismatch=self.on_mismatch,
            adherence_sample=self.adherence_sample,
            backend=backend,
            named=backend is not None,
        )

    @property
    def paper(self) -> bool:
        return self.fidelity == "paper"

    def sampling_params(self) -> SamplingParams:
        defaults = self.recipe.generation
        max_new_tokens = defaults.max_new_tokens
        if self.paper and self.recipe.paper is not None:  # the reference's max_tokens, per prompting mode
            max_new_tokens = self.recipe.paper.max_new_tokens[self.prompting]
        return SamplingParams(
            temperature=defaults.temperature if self.temperature is None else float(self.temperature),
            top_p=defaults.top_p if self.top_p is None else float(self.top_p),
            max_new_tokens=max_new_tokens if self.max_new_tokens is None else int(self.max_new_tokens),
        )

    def dedup_spec(self) -> DedupSpec:
        if self.paper:
            return DedupSpec(None)
        return DedupSpec.resolve(
            self.dedup_threshold,
            embedder=self.embedder,
            drop_cross_class_duplicates=self.drop_cross_class_duplicates,
            embed_precision=self.embed_precision,
        )

    def plan(self, *, run_id: str, journal_path: str | Path) -> RunSettings:
        """What a build's workers need. Spec fields are filled from the config fields of the same name, so a
        new option reaches the build as its config field plus a same-named field in the spec that reads it."""
        backend = self.backend_spec()
        concurrency = self.max_concurrency
        if backend.kind == "transformers":  # enough requests waiting to fill every batch
            concurrency = max(concurrency, 2 * backend.batch_size)
        return self._pick(
            RunSettings,
            recipe=self.recipe,
            backend=backend,
            params=self.sampling_params(),
            journal_path=str(journal_path),
            run_id=run_id,
            max_concurrency=concurrency,
            dedup=self.dedup_spec(),
            budget=self._pick(BudgetSpec),
            retry=self._pick(RetrySpec),
            judge=self.judge_spec(),
            cluster=self._cluster_spec(journal_path),
        )

    def _cluster_spec(self, journal_path: str | Path) -> ClusterSpec | None:
        if not isinstance(self.ray, str):
            return None
        # Without replies_dir (load_dataset; generate_folder passes one in its output) beside the journal.
        replies = self.replies_dir or str(Path(journal_path).parent / "replies")
        return ClusterSpec(address=self.ray, replies=replies, workers=self.ray_workers)

    def _pick(self, spec: type[_Spec], **given: Any) -> _Spec:
        """``spec`` with ``given`` values, every other field read from the config field of the same name."""
        names = [f.name for f in fields(spec)]
        return spec(**{name: given[name] if name in given else getattr(self, name) for name in names})

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
            **{f.name: getattr(self, f.name) for f in option_fields() if f.metadata["option"].changes_rows},
        }
        judge = self.judge_spec()
        if judge.label_check and judge.backend is not None:  # who judges decides which rows are kept
            payload["judge"] = {"backend": judge.backend.identity, "model": judge.backend.model}
        if custom_features is not None:
            payload["features"] = custom_features.to_dict()
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return f"{self.recipe.name}-{digest}"


def check_options(values: dict[str, Any]) -> None:
    """Check the build options among ``values`` by the bounds and choices their fields declare, as a config
    does: for commands that take a build's options without building (``attrprompt estimate``)."""
    for declared in option_fields():
        if declared.name in values:
            check_value(declared, values[declared.name], field_types(declared.name))


@functools.cache
def option_fields() -> tuple[Field, ...]:
    """The build options: every ``AttrPromptConfig`` field declared with ``Option`` metadata, in order."""
    return tuple(f for f in fields(AttrPromptConfig) if "option" in f.metadata)


def field_types(name: str) -> tuple[Any, ...]:
    """The types a field's annotation allows (``int | None`` gives int and NoneType)."""
    hint = _type_hints()[name]
    return typing.get_args(hint) or (hint,)


@functools.cache
def _type_hints() -> dict[str, Any]:
    return typing.get_type_hints(AttrPromptConfig)  # the annotations are strings (from __future__ import annotations)
