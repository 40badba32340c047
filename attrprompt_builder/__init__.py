"""attrprompt-builder: synthetic text-classification datasets with attributed prompts (AttrPrompt).

``import attrprompt_builder`` registers the ``"attrprompt"`` dataset with ``datasets``::

    import attrprompt_builder
    from datasets import load_dataset

    ds = load_dataset("attrprompt", "agnews", endpoint="http://localhost:8080", samples_per_class=25, split="train")
"""

__version__ = "0.1.0"

from .builder import AttrPromptBuilder
from .config import AttrPromptConfig
from .errors import AttrPromptError
from .plugin import register
from .presets import PRESET_NAMES, load_preset
from .recipe import Recipe, load_recipe, parse_recipe

__all__ = [
    "PRESET_NAMES",
    "AttrPromptBuilder",
    "AttrPromptConfig",
    "AttrPromptError",
    "Recipe",
    "__version__",
    "load_preset",
    "load_recipe",
    "parse_recipe",
    "register",
]

register()
