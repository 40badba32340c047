"""The ``datasets`` builder: ``load_dataset("attrprompt", "agnews", endpoint=...)``."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import datasets

try:
    from datasets.builder import Key
except ImportError:  # datasets < 4 (the loading script's users): plain string keys
    Key = None

from attrprompt_builder.client.backends import make_backends
from attrprompt_builder.client.journal import Journal, journal_folder
from attrprompt_builder.dataset.config import AttrPromptConfig
from attrprompt_builder.dataset.schema import CITATION, features_for
from attrprompt_builder.generation.engine import GenerationRun
from attrprompt_builder.generation.plan import RunSettings
from attrprompt_builder.generation.stats import BuildStats
from attrprompt_builder.recipe.presets import PRESET_NAMES
from attrprompt_builder.version import __version__

__all__ = ["AttrPromptBuilder"]

PRESET_VERSION = datasets.Version("1.0.0")


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
            features=features_for(recipe),
            citation=CITATION,
            license=self.config.license or recipe.license,
        )

    @property
    def journal_path(self) -> Path:
        recipe = self.config.recipe
        # Beside the datasets this builder writes (its cache_dir, else the datasets cache), unless moved.
        folder = journal_folder(self.config.journal_dir, cache_root=self._cache_dir_root)
        return folder / f"{recipe.name}-{recipe.fingerprint}.sqlite"

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        # A fresh run id per build, so stats of an interrupted earlier run are not mixed in.
        self._run_id = f"{self.config_id}/{uuid.uuid4().hex[:12]}"
        Journal(self.journal_path).close()  # created (WAL, schema) here, before num_proc workers open it
        settings = self.config.plan(run_id=self._run_id, journal_path=self.journal_path)
        labels = list(self.config.recipe.label_names)
        # datasets splits this list over num_proc workers
        label_shards = [labels] if settings.decides_classes_in_order else [[label] for label in labels]
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
        backends = make_backends(settings.backend, token=self._endpoint_token())
        run = GenerationRun(settings, labels, backends=backends, worker=f"{os.getpid()}-{labels[0]}")
        for position, row_index, row in run.rows():
            yield (Key(position, row_index) if Key is not None else f"{position}-{row_index}"), row

    # -- after the build ------------------------------------------------------------------------
    @property
    def stats(self) -> BuildStats | None:
        """Counts of the build that produced this dataset (None before any build)."""
        journal = Journal(self.journal_path)
        try:
            run_id = getattr(self, "_run_id", None) or journal.latest_run(f"{self.config_id}/")
            return BuildStats.merged(journal.load_stats(run_id)) if run_id else None
        finally:
            journal.close()

    def generation_info(self) -> dict[str, Any]:
        """How the data was made, for the dataset card (no token, no URL credentials)."""
        config = self.config
        spec = config.backend_spec()
        params = config.sampling_params()
        info: dict[str, Any] = {
            "model": spec.model or "(served model)",
            "backend": {"endpoint": "endpoint", "providers": "hf-inference-providers"}.get(spec.kind, spec.kind),
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_new_tokens": params.max_new_tokens,
            "seed": config.seed,
            "samples_per_class": config.samples_per_class,
            "sampling": config.sampling,
            "prompting": config.prompting,
            "dedup_threshold": config.dedup_spec().threshold,
            "embedder": config.embedder or "sentence-transformers/all-MiniLM-L6-v2",
            "package_version": __version__,
        }
        if spec.kind == "endpoint":
            info["endpoint_host"] = ", ".join(spec.hosts)
        if config.price_in is not None or config.price_out is not None:
            info.update(price_in=config.price_in, price_out=config.price_out)
        return info
