"""How a build option is declared, and the checks its declaration implies.

``AttrPromptConfig`` (``config``) declares each option once, as a field made by ``option``; the
``Option`` in its metadata tells the CLI how to spell it and ``check_value`` how to bound it. A bad
value becomes one ``ConfigError`` line naming the field, what was given and the fix (``invalid``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import Field, dataclass, field
from typing import Any

from attrprompt_builder.errors import ConfigError
from attrprompt_builder.recipe.model import Recipe

__all__ = [
    "GENERATE",
    "Option",
    "PRICED",
    "PROMPTS",
    "check_paper_settings",
    "check_value",
    "invalid",
    "option",
    "parse_dedup_threshold",
]

GENERATE = frozenset({"generate"})
PRICED = frozenset({"generate", "estimate"})
PROMPTS = frozenset({"generate", "show", "estimate"})  # options that change which prompts a build sends


@dataclass(frozen=True)
class Option:
    """How a config field appears on the command line; the field itself gives the type and default.

    ``flags`` default to ``--field-name`` (a name without dashes is a positional argument);
    ``commands`` are the subcommands that show the flag; ``parse`` turns the flag's text into the
    field's value when argparse's ``type`` cannot (it raises ``ConfigError`` naming the field).
    ``minimum``/``maximum`` bound a number and ``choices`` a word, checked by ``validate``;
    ``changes_rows`` puts the option in the cache key (the rest only change how rows get made);
    ``const`` lets the flag come without a value (``--ray`` means ``--ray auto``).
    """

    help: str
    flags: tuple[str, ...] = ()
    short: str | None = None
    choices: tuple[str, ...] | None = None
    commands: frozenset[str] = GENERATE
    parse: Callable[[str], Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    changes_rows: bool = False
    const: str | None = None  # the flag may come without a value, which then means this
    metavar: str | None = None

    def spelling(self, name: str) -> tuple[str, ...]:
        long = self.flags or ("--" + name.replace("_", "-"),)
        return (*long, self.short) if self.short else long


def option(default: Any, help: str, **cli: Any) -> Any:
    """A config field declared as a build option (``cli``: the ``Option`` fields besides ``help``)."""
    return field(default=default, metadata={"option": Option(help, **cli)})


def invalid(name: str, given: Any, fix: str) -> ConfigError:
    return ConfigError(f"{name}: got {given!r}; {fix}")


def parse_dedup_threshold(text: str) -> float | str:
    """``--dedup-threshold``: a number, or the words 'auto' and 'off'."""
    if text in ("auto", "off"):
        return text
    try:
        return float(text)
    except ValueError:
        raise invalid("dedup_threshold", text, "use a number in (0, 1], 'auto' or 'off'") from None


def check_value(declared: Field, value: Any, types: tuple[Any, ...]) -> None:
    """The bounds and choices an ``Option`` declares; None passes where the field allows it.

    ``types``: what the field's annotation allows (a whole number is asked for when that is int, not float).
    """
    name, declaration = declared.name, declared.metadata["option"]
    if value is None and declared.default is None:
        return
    if declaration.choices is not None and value not in declaration.choices:
        raise invalid(name, value, f"use one of {', '.join(declaration.choices)}")
    if declaration.minimum is None:
        return
    low, high = declaration.minimum, declaration.maximum
    if int in types and float not in types:
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
            bound = f"between {int(low)} and {int(high)}" if high else f">= {int(low)}"
            raise invalid(name, value, f"use a whole number {bound}")
    elif (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
        raise invalid(name, value, f"use a number {bound}")


def check_paper_settings(config: Any, recipe: Recipe) -> None:
    """Paper mode fixes the reference's settings: an option of ``config`` that would change one of them is refused."""
    paper = recipe.paper
    if paper is None:
        raise invalid(
            "fidelity",
            "paper",
            f"recipe {recipe.name!r} has no `paper:` section (the reference code's settings); use a preset, "
            "a recipe made from one (attrprompt discover --similar-only), or fidelity='default'",
        )
    reference = {
        "dedup_threshold": (("off",), "the paper has no near-duplicate filter"),
        "drop_cross_class_duplicates": ((False,), "the paper has no near-duplicate filter"),
        "sampling": (("uniform",), "the paper draws uniformly"),
        "temperature": ((None, 1.0), "the paper samples at 1.0"),
        "top_p": ((None, 1.0), "the paper samples at 1.0"),
        "max_new_tokens": ((None, paper.max_new_tokens[config.prompting]), "the paper's max_tokens"),
    }
    for name, (allowed, why) in reference.items():
        value = getattr(config, name)
        if name == "dedup_threshold" and value in ("auto", None):
            continue  # the default, or off: both mean no filter in paper mode
        if value not in allowed:
            shown = [a for a in allowed if a is not None]
            raise ConfigError(
                f"{name}: got {value!r}, which --paper (fidelity='paper') fixes to {shown[0]!r} ({why}); "
                f"drop one of {name} and --paper"
            )
