"""attrprompt-builder: synthetic text-classification datasets with attributed prompts (AttrPrompt).

``import attrprompt_builder`` registers the ``"attrprompt"`` dataset with ``datasets``::

    import attrprompt_builder
    from datasets import load_dataset

    ds = load_dataset("attrprompt", "agnews", endpoint="http://localhost:8080", samples_per_class=25, split="train")
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from .builder import AttrPromptBuilder
from .config import AttrPromptConfig
from .errors import AttrPromptError
from .plugin import register
from .presets import PRESET_NAMES, load_preset
from .recipe import Recipe, load_recipe, parse_recipe

# Heavier entry points (FAISS, transformers, matplotlib) load on first use, as in huggingface_hub.
_LAZY = {
    "compare_folders": "compare",
    "deduplicate": "dedup",
    "discover_recipe": "discover",
    "generate_folder": "folder",
    "publish": "publishing",
    "train_classifier": "train",
    "write_card": "card",
}

if TYPE_CHECKING:
    from .card import write_card
    from .compare import compare_folders
    from .dedup import deduplicate
    from .discover import discover_recipe
    from .folder import generate_folder
    from .publishing import publish
    from .train import train_classifier

__all__ = [
    "AttrPromptBuilder",
    "AttrPromptConfig",
    "AttrPromptError",
    "PRESET_NAMES",
    "Recipe",
    "__version__",
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
