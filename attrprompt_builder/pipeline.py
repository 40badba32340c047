"""``attrprompt generate`` as a function: build the dataset, write the folder, write the card."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import datasets

from attrprompt_builder.dataset.builder import AttrPromptBuilder
from attrprompt_builder.dataset.folder import write_folder
from attrprompt_builder.errors import AttrPromptError
from attrprompt_builder.recipe.presets import is_preset

__all__ = ["build_dataset", "card_embedder", "generate_folder", "make_builder", "unwrap_error"]


def unwrap_error(err: BaseException) -> BaseException:
    """Our own error inside datasets' ``DatasetGenerationError`` wrapper, if there is one."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, (AttrPromptError, KeyboardInterrupt)):
            return seen
        seen = seen.__cause__ or seen.__context__
    return err


def make_builder(
    preset_or_recipe: str, *, cache_dir: str | None = None, token: str | None = None, **config_kwargs: Any
) -> AttrPromptBuilder:
    """A builder for a preset name or a recipe path (CLI arguments arrive as one string)."""
    if is_preset(preset_or_recipe):
        return AttrPromptBuilder(config_name=preset_or_recipe, cache_dir=cache_dir, token=token, **config_kwargs)
    return AttrPromptBuilder(config=preset_or_recipe, cache_dir=cache_dir, token=token, **config_kwargs)


def build_dataset(builder: AttrPromptBuilder, *, num_proc: int | None = None) -> datasets.Dataset:
    try:
        builder.download_and_prepare(num_proc=num_proc)
    except datasets.exceptions.DatasetGenerationError as err:
        cause = unwrap_error(err)
        if cause is err:
            raise
        raise cause from None  # the wrapper adds nothing a user can act on
    return builder.as_dataset(split="train")


def generate_folder(
    preset_or_recipe: str,
    output_dir: str | Path,
    *,
    num_proc: int | None = None,
    cache_dir: str | None = None,
    token: str | None = None,
    card: bool = True,
    **config_kwargs: Any,
) -> Path:
    """Generate a dataset and write it, with its card, to ``output_dir`` (what ``attrprompt generate`` does)."""
    builder = make_builder(preset_or_recipe, cache_dir=cache_dir, token=token, **config_kwargs)
    dataset = build_dataset(builder, num_proc=num_proc)
    folder = write_folder(dataset, Path(output_dir), builder=builder, stats=builder.stats)
    if card:
        from attrprompt_builder.card.render import write_card

        write_card(folder, embedder=card_embedder(builder.config.embedder))
    return folder


def card_embedder(spec: str | None):
    """The embedder for the card's pairwise similarity, or None (with a warning) when it cannot load.

    The dataset is already written at this point: a missing model must not cost the user the build.
    """
    from attrprompt_builder.filters.dedup.embedders import load_embedder

    try:
        return load_embedder(spec)
    except AttrPromptError as err:
        print(f"warning: the card leaves out pairwise similarity: {err}", file=sys.stderr)
        return None
