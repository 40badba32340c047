"""What attribute discovery found, and the commented recipe YAML it writes for a person to review."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attrprompt_builder.errors import ConfigError
from attrprompt_builder.recipe.model import Recipe, dump_yaml

__all__ = [
    "CATCH_ALL",
    "DiscoveryReport",
    "DiscoveryResult",
    "LENGTH_VALUES",
    "RETRIES",
    "SIMPLE_TEMPLATE",
    "Unusable",
    "recipe_data",
    "recipe_yaml",
]

# The paper's lengths. discover adds `length` itself: the template computes "between L and L+50
# words" from it, which needs numbers, and a model asked for lengths answers "short", "medium".
LENGTH_VALUES = ("30", "100")
CATCH_ALL = "Others {{ dimension }} for {{ label_text }}."
RETRIES = 3  # a reply with nothing usable is asked again, with a new seed, at most this many times
SIMPLE_TEMPLATE = (  # the presets' SimPrompt wording
    "Suppose you are a writer for {{ domain }}. Please give an example of a synthetic {{ domain }} about {{ label_text }}."
)


@dataclass(frozen=True)
class Unusable:
    """A question whose replies held nothing usable after every retry, and what discovery did instead."""

    step: str
    what: str
    reply: str
    consequence: str

    def __str__(self) -> str:
        return f"{self.step}, {self.what}: nothing usable in {RETRIES + 1} replies (last: {self.reply!r}); {self.consequence}"


@dataclass
class DiscoveryReport:
    """What each step produced, left out or could not use; dimension -> label -> values where nested."""

    model: str
    host: str
    date: str
    proposed: list[str] = field(default_factory=list)
    skipped_dimensions: dict[str, str] = field(default_factory=dict)
    class_dependent: dict[str, bool] = field(default_factory=dict)
    similar: dict[str, list[str]] = field(default_factory=dict)
    invented: dict[str, list[str]] = field(default_factory=dict)
    dropped: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    kept_despite_yes: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    unusable: list[Unusable] = field(default_factory=list)
    sent: int = 0
    reused: int = 0


@dataclass
class DiscoveryResult:
    recipe: Recipe
    yaml_text: str
    report: DiscoveryReport

    def write(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the YAML; replacing a different file (a reviewed, edited recipe?) needs ``overwrite``."""
        path = Path(path).expanduser()
        if path.exists() and not overwrite and path.read_text(encoding="utf-8") != self.yaml_text:
            raise ConfigError(
                f"output: {path} exists and differs from the discovered recipe; pass --force to replace it or choose another path"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.yaml_text, encoding="utf-8")
        return path


def recipe_data(
    report: DiscoveryReport,
    *,
    name: str,
    domain: str,
    labels: list[str],
    texts: dict[str, str],
    values: dict[str, dict[str | None, list[str]]],
) -> dict[str, Any]:
    """The recipe as plain data: discovered dimensions, the paper's lengths, numbered-requirement template."""
    attributes: list[dict[str, Any]] = []
    for dim, by_label in values.items():
        if report.class_dependent[dim]:
            per_class = {label: by_label[label] for label in labels}
            attributes.append({"name": dim, "per_class": per_class, "catch_all": CATCH_ALL})
        else:
            attributes.append({"name": dim, "values": by_label[None]})
    attributes.append({"name": "length", "values": list(LENGTH_VALUES)})  # step 1 never yields it (_LENGTH_NAMES)
    lines = ["Give a synthetic sample of {{ domain }} about {{ label_text }} following the requirements below:"]
    lines += [f"{i}. The {dim.replace('_', ' ')} should be '{{{{ {dim} }}}}'." for i, dim in enumerate(values, 1)]
    lines.append(f"{len(lines)}. Should be in length between {{{{ length }}}} words and {{{{ length | int + 50 }}}} words.")
    lines.append("{%- if similar_classes %}")
    lines.append(
        f"{len(lines) - 1}. The {{{{ domain }}}} must be relevant to {{{{ label_text }}}} and irrelevant to: "
        "{{ similar_classes | join(', ') }}."
    )
    lines.append("{%- endif %}")
    similar = {label: [texts[s] for s in sims] for label, sims in report.similar.items() if sims}
    return {
        "name": name,
        "description": f"Recipe found by attrprompt discover with {report.model} on {report.date}; "
        "review the values before publishing data made with it.",
        "domain": domain,
        "language": "en",
        "license": "other",
        "labels": list(labels),
        "attributes": attributes,
        **({"similar": similar} if similar else {}),
        "prompts": {"attributed": "\n".join(lines), "simple": SIMPLE_TEMPLATE},
        "generation": {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 512},
    }


def _comment(text: str) -> str:
    # split() also removes "\r" and the other characters YAML would read as a line break inside a comment.
    lines = (" " * (len(line) - len(line.lstrip(" "))) + " ".join(line.split()) for line in text.split("\n"))
    return "".join(f"# {line}".rstrip() + "\n" for line in lines)


def _attribute_note(dim: str, report: DiscoveryReport) -> str:
    if dim not in report.class_dependent:
        return f"{dim}: added by attrprompt discover, not the model: the paper's word counts (for 'L to L+50 words')."
    kind = "shared by every class"
    if report.class_dependent[dim]:
        kind = "class-dependent: values per class, asked to avoid the similar classes"
    note = f"{dim}: step 1 proposed it ({kind}); values from step 3."
    for label, values in report.dropped.get(dim, {}).items():
        note += f"\n  step 4 dropped for {label}: {'; '.join(values)}"
    for label, values in report.kept_despite_yes.get(dim, {}).items():
        note += f"\n  step 4 said related, kept because the cap was reached, for {label}: {'; '.join(values)}"
    return note


def recipe_yaml(data: dict[str, Any], report: DiscoveryReport, options: dict[str, int]) -> str:
    by = f"{report.model} at {report.host}" if report.host else report.model
    out = [
        _comment(
            f"Recipe discovered by `attrprompt discover` on {report.date} with {by} (seed {options['seed']}).\n"
            "REVIEW IT before generating: every list below was written by that model and checked by no person.\n"
            "Steps (the AttrPrompt paper's attribute discovery, arXiv:2306.15895): 1. dimensions, and whether each is\n"
            "class-dependent; 2. the most similar classes of each class; 3. values per dimension (per class when\n"
            "class-dependent); 4. class-dependent values the model related to a similar class were dropped\n"
            f"(at most {options['max_filtered_per_class']} per class and dimension).\n"
            "Generate with: attrprompt generate <this file> --endpoint URL --output FOLDER"
        )
    ]
    out.append(dump_yaml({k: data[k] for k in ("name", "description", "domain", "language", "license")}))
    out.append(_comment("Labels as given to `attrprompt discover`.") + dump_yaml({"labels": data["labels"]}))
    skipped = "; ".join(f"{k} ({v})" for k, v in report.skipped_dimensions.items())
    note = f"Step 1: dimensions proposed by the model: {', '.join(report.proposed)}."
    out.append(_comment(note + (f"\nLeft out: {skipped}." if skipped else "")) + "attributes:\n")
    out += [_comment(_attribute_note(item["name"], report)) + dump_yaml([item]) for item in data["attributes"]]
    if "similar" in data:
        note = "Step 2: the classes the model found most similar (names matching a label only, as label text)."
        invented = "; ".join(f"{k}: {', '.join(v)}" for k, v in report.invented.items())
        note += f"\nNames it gave that match no label, dropped: {invented}." if invented else ""
        out.append(_comment(note) + dump_yaml({"similar": data["similar"]}))
    note = "Templates written by attrprompt discover (not by the model): one requirement per dimension; edit freely."
    out.append(_comment(note) + dump_yaml({"prompts": data["prompts"]}))
    out.append(dump_yaml({"generation": data["generation"]}))
    if report.unusable:
        out.append(_comment("Unusable replies:\n" + "\n".join(f"  {u}" for u in report.unusable)))
    return "".join(out)
