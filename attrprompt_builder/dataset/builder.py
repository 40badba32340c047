"""The ``datasets`` builder: ``load_dataset("attrprompt", "agnews", endpoint=...)``."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets

try:
    from datasets.builder import Key
except ImportError:  # datasets < 4 (the loading script's users): plain string keys
    Key = None

from attrprompt_builder.client.backends import make_backends
from attrprompt_builder.client.journal import Journal, journal_path
from attrprompt_builder.client.served_model import ServedModelQuery
from attrprompt_builder.dataset.config import AttrPromptConfig
from attrprompt_builder.dataset.schema import CITATION, features_for
from attrprompt_builder.errors import ConfigError
from attrprompt_builder.generation.engine import GenerationRun
from attrprompt_builder.generation.label_rounds import checked_rows
from attrprompt_builder.generation.plan import RunSettings
from attrprompt_builder.generation.stats import BuildStats
from attrprompt_builder.recipe.presets import PRESET_NAMES
from attrprompt_builder.redaction import display_name
from attrprompt_builder.version import __version__

if TYPE_CHECKING:
    from attrprompt_builder.client.ray_cluster import WorkerPool

__all__ = ["AttrPromptBuilder", "refuse_num_proc_on_ray"]


def refuse_num_proc_on_ray(num_proc: int | None) -> None:
    if num_proc is not None and num_proc > 1:
        raise ConfigError(
            f"num_proc: got {num_proc}; on Ray the workers send the requests and one driver decides: "
            "drop num_proc (use ray_workers for more workers)"
        )


def _worker_pool(settings: RunSettings, token: str | None) -> WorkerPool:
    """The Ray workers of a cluster build (joining the cluster first), shared by its label-check rounds."""
    from attrprompt_builder.client.ray_cluster import WorkerPool, connect
    from attrprompt_builder.client.ray_workers import WorkerSpec

    cluster = settings.cluster
    assert cluster is not None
    connect(cluster.address)
    spec = WorkerSpec(
        backend=settings.backend,
        max_attempts=settings.retry.max_attempts,
        max_errors=settings.max_errors,
        seed=settings.seed,
        first_timeout=settings.first_request_timeout,
        replies=cluster.replies,
        session=settings.run_id.rsplit("/", 1)[-1],
        after_block=settings.worker_vectors(),
    )
    return WorkerPool(spec, workers=cluster.workers, max_concurrency=settings.worker_concurrency, token=token)


PRESET_VERSION = datasets.Version("1.0.0")
# Beside the Arrow files: the stats of the build that wrote them, whichever journal it used.
_STATS_FILE = "attrprompt_stats.json"


class AttrPromptBuilder(datasets.GeneratorBasedBuilder):
    """Generates a labelled text-classification dataset from an LLM with attributed prompts."""

    BUILDER_CONFIG_CLASS = AttrPromptConfig
    BUILDER_CONFIGS = [  # noqa: RUF012  (datasets reads this class attribute; it is never mutated)
        AttrPromptConfig(name=name, preset=name, version=PRESET_VERSION, description=f"The AttrPrompt paper's {name} task")
        for name in PRESET_NAMES
    ]
    VERSION = PRESET_VERSION
    config: AttrPromptConfig

    def _create_builder_config(self, config_name=None, custom_features=None, config_id=None, **config_kwargs):
        # A recipe path given where a config name goes: load_dataset("attrprompt", "task.yaml", ...).
        if isinstance(config_name, str) and config_name.endswith((".yaml", ".yml")) and "config" not in config_kwargs:
            config_kwargs["config"], config_name = config_name, None
        # datasets skips None-valued kwargs when overriding a predefined config; None disables dedup.
        if "dedup_threshold" in config_kwargs and config_kwargs["dedup_threshold"] is None:
            config_kwargs["dedup_threshold"] = "off"
        builder_config, config_id = super()._create_builder_config(
            config_name, custom_features=custom_features, config_id=config_id, **config_kwargs
        )
        builder_config.validate()  # load_dataset kwargs were set on a copy of a preset, bypassing __post_init__
        return builder_config, config_id

    def _info(self) -> datasets.DatasetInfo:
        recipe = self.config.recipe
        return datasets.DatasetInfo(
            description=recipe.description or f"Synthetic {recipe.domain} classification data generated with AttrPrompt.",
            features=features_for(recipe, label_check=self.config.label_check is not None),
            citation=CITATION,
            license=self.config.license or recipe.license,
        )

    @property
    def journal_path(self) -> Path:
        # Beside the datasets this builder writes (its cache_dir, else the datasets cache), unless moved;
        # one journal for every recipe, since keys are fingerprints of the requests themselves.
        return journal_path(self.config.journal_dir, cache_root=self._cache_dir_root)

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        # A fresh run id per build, so stats of an interrupted earlier run are not mixed in.
        self._run_id = f"{self.config_id}/{uuid.uuid4().hex[:12]}"
        journal = Journal(self.journal_path)  # created here, before num_proc workers open it
        try:
            journal.absorb_legacy()  # the per-recipe journals of 0.1.x: nothing paid is lost
        finally:
            journal.close()
        settings = self.config.plan(run_id=self._run_id, journal_path=self.journal_path)
        labels = list(self.config.recipe.label_names)
        # datasets splits this list over num_proc workers
        label_shards = [labels] if settings.one_shard else [[label] for label in labels]
        return [
            datasets.SplitGenerator(name=datasets.Split.TRAIN, gen_kwargs={"label_shards": label_shards, "settings": settings})
        ]

    def _endpoint_token(self) -> str | None:
        # `token` reaches a user's endpoint only when passed explicitly; True means "my HF token".
        if self.token is True:
            from huggingface_hub import get_token

            return get_token()
        return self.token if isinstance(self.token, str) and self.token else None

    def _generate_examples(self, label_shards: list[list[str]], settings: RunSettings):
        labels = [label for shard in label_shards for label in shard]  # one run: its classes share the endpoint
        token = self._endpoint_token()
        served = ServedModelQuery(settings.backend, token=token)
        judge = settings.judge.backend  # None: the build's own backend judges
        worker = f"{os.getpid()}-{labels[0]}"
        pool = _worker_pool(settings, token) if settings.cluster is not None else None

        def make_run(excluded: frozenset[tuple[str, int]]) -> GenerationRun:
            backends = make_backends(settings.backend, token=token)  # a run closes its backends when done
            return GenerationRun(
                settings,
                labels,
                backends=backends,
                worker=worker,
                served=served,
                excluded=excluded,
                judge_backends=make_backends(judge, token=token) if judge is not None else None,
                judge_served=ServedModelQuery(judge, token=token) if judge is not None else None,
                pool=pool,
            )

        try:
            rows = make_run(frozenset()).rows() if settings.label_check != "classifier" else checked_rows(settings, make_run)
            for position, row_index, row in rows:
                yield (Key(position, row_index) if Key is not None else f"{position}-{row_index}"), row
        finally:
            if pool is not None:
                pool.close()

    def _prepare_split(self, split_generator: datasets.SplitGenerator, *args: Any, **kwargs: Any) -> None:
        if self.config.ray is not None:
            refuse_num_proc_on_ray(kwargs.get("num_proc"))
        super()._prepare_split(split_generator, *args, **kwargs)

    # -- after the build ------------------------------------------------------------------------
    def _download_and_prepare(
        self, dl_manager: datasets.DownloadManager, verification_mode: Any, **prepare_split_kwargs: Any
    ) -> None:
        super()._download_and_prepare(dl_manager, verification_mode, **prepare_split_kwargs)
        # Every worker has saved its counts by now; _output_dir is the folder datasets moves into place
        # (a local one: a remote cache_dir simply keeps no stats beside its files).
        stats = self._journal_stats(self._run_id)
        if stats is not None and os.path.isdir(self._output_dir):
            (Path(self._output_dir) / _STATS_FILE).write_text(json.dumps(stats.to_dict(), sort_keys=True), encoding="utf-8")

    def _journal_stats(self, run_id: str | None) -> BuildStats | None:
        journal = Journal(self.journal_path)
        try:
            run_id = run_id or journal.latest_run(f"{self.config_id}/")
            return BuildStats.merged(journal.load_stats(run_id)) if run_id else None
        finally:
            journal.close()

    @property
    def cache_hit(self) -> bool:
        """True when the rows came from the datasets cache: this builder generated nothing."""
        return getattr(self, "_run_id", None) is None

    @property
    def built_stats(self) -> BuildStats | None:
        """Counts of the build that generated the rows, this run's or an earlier one's (None when unknown)."""
        if not self.cache_hit:
            return self._journal_stats(self._run_id)
        try:
            return BuildStats.load(Path(self._output_dir) / _STATS_FILE)
        except (OSError, ValueError, TypeError):  # a cache written before the stats were kept beside it
            return self._journal_stats(None)

    @property
    def stats(self) -> BuildStats | None:
        """What this run did (None when nothing is known).

        On a cache hit nothing was sent: the rows' counts (kept, dropped, per class) are those of the
        build that made them, with every reply behind them counted as reused and no tokens spent.
        """
        stats = self.built_stats
        if stats is None or not self.cache_hit:
            return stats
        stats.reused += stats.sent
        stats.judge_reused += stats.judge_sent
        stats.sent = stats.prompt_tokens = stats.completion_tokens = 0
        stats.judge_sent = stats.judge_prompt_tokens = stats.judge_completion_tokens = 0
        stats.cost = stats.judge_cost = stats.wall_time_s = 0.0
        stats.retries.clear()
        stats.failures.clear()
        return stats

    def generation_info(self) -> dict[str, Any]:
        """How the data was made, for the dataset card (no token, no URL credentials)."""
        config = self.config
        spec = config.backend_spec()
        params = config.sampling_params()
        info: dict[str, Any] = {
            # A local folder would show where the user keeps models: the card and the Hub get its last parts.
            "model": display_name(spec.model) if spec.model else "(served model)",
            "backend": {"endpoint": "endpoint", "providers": "hf-inference-providers"}.get(spec.kind, spec.kind),
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_new_tokens": params.max_new_tokens,
            "seed": config.seed,
            "samples_per_class": config.samples_per_class,
            "sampling": config.sampling,
            "prompting": config.prompting,
            "fidelity": config.fidelity,
            "cleaning": "ascii_squeeze (the paper's clean_str)" if config.paper or config.ascii_squeeze else "whitespace only",
            "refusal_filter": (
                f"the paper's substrings {list(config.recipe.paper.refusals[config.prompting])}"
                if config.paper and config.recipe.paper is not None
                else "refusal patterns (filters/screening.py)"
            ),
            "dedup_threshold": config.dedup_spec().threshold,
            "embedder": display_name(config.embedder or "sentence-transformers/all-MiniLM-L6-v2"),
            "package_version": __version__,
        }
        if config.paper and config.recipe.paper is not None:
            info["paper_deviations"] = config.recipe.paper_deviations()
            if config.recipe.paper.iterate and config.prompting == "attributed":
                # -n then counts rows per value of that dimension (the reference's loop), not per class.
                info["paper_loop"] = f"each {config.recipe.paper.iterate} value gets {config.samples_per_class} rows"
        if config.label_check is not None:
            dropped = " (flagged rows dropped and replaced)" if config.drop_label_issues else ""
            info["label_check"] = config.label_check + dropped
        if spec.kind == "endpoint":
            info["endpoint_host"] = ", ".join(spec.hosts)
        judge = config.judge_spec()
        if judge.enabled:
            where = judge.backend or spec
            info["judge"] = {
                "model": display_name(where.model) if where.model else "(served model)",
                "endpoint_host": ", ".join(where.hosts) or None,
                "label_check": judge.label_check,
                "on_mismatch": judge.on_mismatch if judge.label_check else None,
                "adherence_sample": judge.adherence_sample,
            }
        if config.price_in is not None or config.price_out is not None:
            info.update(price_in=config.price_in, price_out=config.price_out)
        return info
