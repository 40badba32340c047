"""Stable import path of the builder: ``loading_scripts/attrprompt.py`` (and copies of it users keep) import it from here."""

from attrprompt_builder.dataset.builder import AttrPromptBuilder

__all__ = ["AttrPromptBuilder"]
