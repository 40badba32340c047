"""attrprompt-builder: synthetic text-classification datasets with attributed prompts (AttrPrompt).

``import attrprompt_builder`` registers the ``"attrprompt"`` dataset with ``datasets``::

    import attrprompt_builder
    from datasets import load_dataset

    ds = load_dataset("attrprompt", "agnews", endpoint="http://localhost:8080", samples_per_class=25, split="train")
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from attrprompt_builder.dataset.builder import AttrPromptBuilder
from attrprompt_builder.dataset.config import AttrPromptConfig
from attrprompt_builder.dataset.plugin import register
from attrprompt_builder.errors import AttrPromptError
from attrprompt_builder.recipe.model import Recipe, load_recipe, parse_recipe
from attrprompt_builder.recipe.presets import PRESET_NAMES, load_preset
from attrprompt_builder.version import __version__

# Heavier entry points (FAISS, transformers, matplotlib) load on first use, as in huggingface_hub.
_LAZY = {
    "audit": "quality_audit",
    "compare_folders": "compare",
    "deduplicate": "dataset.deduplicate",
    "discover_recipe": "discover.steps",
    "generate_folder": "pipeline",
    "publish": "dataset.publish",
    "train_classifier": "train.classifier",
    "write_card": "card.render",
}

if TYPE_CHECKING:
    from attrprompt_builder.card.render import write_card
    from attrprompt_builder.compare import compare_folders
    from attrprompt_builder.dataset.deduplicate import deduplicate
    from attrprompt_builder.dataset.publish import publish
    from attrprompt_builder.discover.steps import discover_recipe
    from attrprompt_builder.pipeline import generate_folder
    from attrprompt_builder.quality_audit import audit
    from attrprompt_builder.train.classifier import train_classifier

__all__ = [
    "AttrPromptBuilder",
    "AttrPromptConfig",
    "AttrPromptError",
    "PRESET_NAMES",
    "Recipe",
    "__version__",
    "audit",
    "compare_folders",
    "deduplicate",
    "discover_recipe",
    "generate_folder",
    "load_preset",
    "load_recipe",
    "parse_recipe",
    "publish",
    "register",
    "train_classifier",
    "write_card",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


register()
