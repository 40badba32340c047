"""Attribute discovery: ask an LLM for a recipe's dimensions, similar classes and values (the paper's 4 steps).

(1) the dimensions that make samples of the domain diverse, and for each whether its values depend
on the class; (2) for each class, the classes most easily confused with it (only names matching a
label are kept); (3) values per dimension: per class for class-dependent ones, asked to be
unrelated to the similar classes, shared otherwise; (4) for each class-dependent value, whether it
relates to a similar class: "yes" values are dropped, at most ``max_filtered_per_class`` per class
and dimension (the paper's cap, which keeps a class from losing most of its list).

Every question goes through the generation client (``Dispatcher`` over ``make_backends``) and a
journal, keyed like generation requests (see ``discover_asker``), so rerunning discovery re-sends
nothing already paid. The result is a commented recipe YAML for a person to review before
``attrprompt generate``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from attrprompt_builder.client.backends import BackendSpec
from attrprompt_builder.client.journal import journal_folder
from attrprompt_builder.client.types import SamplingParams
from attrprompt_builder.discover.answers import (
    dimension_name,
    match_labels,
    parse_class_dependence,
    parse_list,
    parse_yes_no,
)
from attrprompt_builder.discover.asker import Asker, Question, run_questions
from attrprompt_builder.discover.report import (
    RETRIES,
    DiscoveryReport,
    DiscoveryResult,
    Unusable,
    recipe_data,
    recipe_yaml,
)
from attrprompt_builder.errors import ConfigError, DiscoveryError
from attrprompt_builder.recipe.model import (
    RESERVED_NAMES,
    default_label_text,
    parse_recipe,
)

__all__ = [
    "DiscoveryError",
    "DiscoveryReport",
    "DiscoveryResult",
    "Steps",
    "Unusable",
    "check_options",
    "discover_recipe",
    "journal_path_for",
    "new_report",
]

_LENGTH_NAMES = frozenset({"length", "text_length", "word_count", "number_of_words", "word_length", "size"})
LIST_PARAMS = SamplingParams(temperature=0.7, top_p=1.0, max_new_tokens=512)
YES_NO_PARAMS = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=48)

DIMENSIONS_PROMPT = (
    "We are creating a dataset of synthetic {domain} for a text classification task with these classes: "
    "{classes}.\nWhich attribute dimensions (besides the class) should vary from sample to sample to make the "
    "{domain} diverse? Examples of attribute dimensions are the subtopic, the writing style or the location. "
    "Do not include the length.\nList the {count} most important attribute dimensions as a numbered list, "
    "one short name per line."
)
DEPENDENCE_PROMPT = (
    "We are creating synthetic {domain} for a text classification task with these classes: {classes}.\n"
    "Do the suitable values of the attribute '{dimension}' depend on the class of the {domain}? Answer yes if "
    "each class needs its own values (class-dependent), no if the same values fit every class. Answer yes or no."
)
SIMILAR_PROMPT = (
    "Here are the classes of a {domain} classification task: {classes}.\n"
    "Which {count} of these classes are the most similar to '{label}', i.e. the easiest to confuse with it? "
    "Answer with a numbered list of class names copied from the list above, most similar first."
)
CLASS_VALUES_PROMPT = (
    "List {count} diverse {dimension} for {domain} about {label}.{unrelated}\n"
    "Answer with a numbered list, one short item per line."
)
UNRELATED_CLAUSE = " Each one must be specific to {label} and unrelated to {similar}."
SHARED_VALUES_PROMPT = (
    "List {count} diverse {dimension} for {domain}. They must suit every class of the task ({classes}).\n"
    "Answer with a numbered list, one short item per line."
)
FILTER_PROMPT = (
    "In {domain} about {label}, is the {dimension} '{value}' related to any of these classes: {similar}? Answer yes or no."
)


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77] + "..."


class Steps:
    """The four steps; each fills ``report`` and returns what the next one needs."""

    def __init__(
        self,
        asker: Asker,
        labels: list[str],
        domain: str,
        options: dict[str, int],
        report: DiscoveryReport,
        *,
        texts: dict[str, str] | None = None,
    ) -> None:
        self.asker, self.labels, self.domain, self.options, self.report = asker, labels, domain, options, report
        self.texts = texts or {label: default_label_text(label) for label in labels}
        self.classes = ", ".join(self.texts.values())

    def similar_text(self, label: str) -> str:
        return ", ".join(self.texts[s] for s in self.report.similar.get(label, ()))

    async def dimensions_and_similar(self) -> list[str]:
        report, limit = self.report, self.options["max_dimensions"]

        def names_in(reply: str) -> list[str]:
            names = (dimension_name(item) for item in parse_list(reply))
            return [n for n in names if n and n not in _LENGTH_NAMES and n not in RESERVED_NAMES]

        prompt = DIMENSIONS_PROMPT.format(domain=self.domain, classes=self.classes, count=limit)
        ((names, reply),) = await self.asker.ask_all([(prompt, LIST_PARAMS, ("dimensions",), names_in)])
        if not names:
            raise DiscoveryError(
                f"step 1 (dimensions): no usable list of attribute dimensions in {RETRIES + 1} replies (last: "
                f"{_excerpt(reply)!r}); check the endpoint and model, or write the recipe by hand"
            )
        for item in parse_list(reply):
            name = dimension_name(item)
            if (name or item) in report.proposed:
                continue
            report.proposed.append(name or item)
            if name is None:
                report.skipped_dimensions[item] = "not a short dimension name"
            elif name in _LENGTH_NAMES:
                report.skipped_dimensions[name] = "length is added by discover, with word counts"
            elif name in RESERVED_NAMES:
                report.skipped_dimensions[name] = "the name of a dataset column"
        names = list(dict.fromkeys(names))
        for name in names[limit:]:
            report.skipped_dimensions[name] = f"beyond max_dimensions={limit}"
        names = names[:limit]
        questions: list[Question] = [
            (
                DEPENDENCE_PROMPT.format(domain=self.domain, classes=self.classes, dimension=n.replace("_", " ")),
                YES_NO_PARAMS,
                ("dependence", n),
                parse_class_dependence,
            )
            for n in names
        ]
        questions += self.similar_questions()
        answers = await self.asker.ask_all(questions)
        for name, (dependent, reply) in zip(names, answers):
            # Shared values for a class-specific dimension would mislabel data; the reverse only costs requests.
            if dependent is None:
                report.unusable.append(
                    Unusable("step 1 (class-dependent?)", f"dimension {name!r}", _excerpt(reply), "treated as class-dependent")
                )
            report.class_dependent[name] = dependent is not False
        self.record_similar(answers[len(names) :])
        return names

    def similar_questions(self, labels: list[str] | None = None) -> list[Question]:
        """Step 2: for each class (of ``labels``, default all), the classes most easily confused with it."""
        count = min(self.options["similar_per_class"], len(self.labels) - 1)
        questions: list[Question] = []
        for label in self.labels if labels is None else labels:
            others = {k: v for k, v in self.texts.items() if k != label}
            prompt = SIMILAR_PROMPT.format(domain=self.domain, classes=self.classes, count=count, label=self.texts[label])
            parse = lambda reply, others=others: match_labels(parse_list(reply), others)[0][:count]  # noqa: E731
            questions.append((prompt, LIST_PARAMS, ("similar", label), parse))
        return questions

    def record_similar(self, answers: list[tuple[Any, str]], labels: list[str] | None = None) -> None:
        for label, (similar, reply) in zip(self.labels if labels is None else labels, answers):
            self.report.similar[label] = similar or []
            invented = match_labels(parse_list(reply), self.texts)[1]
            if invented:
                self.report.invented[label] = invented
            if similar is None:
                self.report.unusable.append(
                    Unusable(
                        "step 2 (similar classes)",
                        f"class {label!r}",
                        _excerpt(reply),
                        "no similar classes for it, so no filtering either",
                    )
                )

    async def values(self, names: list[str]) -> dict[str, dict[str | None, list[str]]]:
        count = self.options["values_per_dimension"]
        questions: list[Question] = []
        targets: list[tuple[str, str | None]] = []
        for name in names:
            words = name.replace("_", " ")
            for label in self.labels if self.report.class_dependent[name] else [None]:
                if label is None:
                    prompt = SHARED_VALUES_PROMPT.format(count=count, dimension=words, domain=self.domain, classes=self.classes)
                else:
                    similar = self.similar_text(label)
                    unrelated = UNRELATED_CLAUSE.format(label=self.texts[label], similar=similar) if similar else ""
                    prompt = CLASS_VALUES_PROMPT.format(
                        count=count, dimension=words, domain=self.domain, label=self.texts[label], unrelated=unrelated
                    )
                parse = lambda reply: parse_list(reply, limit=count)  # noqa: E731
                questions.append((prompt, LIST_PARAMS, ("values", name, label or "*"), parse))
                targets.append((name, label))
        values: dict[str, dict[str | None, list[str]]] = {name: {} for name in names}
        for (name, label), (items, reply) in zip(targets, await self.asker.ask_all(questions)):
            if items is None:
                where = f"dimension {name!r}" + (f", class {label!r}" if label else "")
                self.report.unusable.append(Unusable("step 3 (values)", where, _excerpt(reply), f"dimension {name!r} left out"))
                self.report.skipped_dimensions[name] = "no usable values (see the unusable replies)"
            values[name][label] = items or []
        return {name: by_label for name, by_label in values.items() if name not in self.report.skipped_dimensions}

    async def filter(self, values: dict[str, dict[str | None, list[str]]]) -> None:
        """Drop the class-dependent values the model relates to a similar class (in place)."""
        questions: list[Question] = []
        targets: list[tuple[str, str, str]] = []
        for name in (n for n in values if self.report.class_dependent[n]):
            for label in self.labels:
                similar = self.similar_text(label)
                for value in values[name][label] if similar else []:
                    prompt = FILTER_PROMPT.format(
                        domain=self.domain,
                        label=self.texts[label],
                        dimension=name.replace("_", " "),
                        value=value,
                        similar=similar,
                    )
                    questions.append((prompt, YES_NO_PARAMS, ("filter", name, label, value), parse_yes_no))
                    targets.append((name, label, value))
        related: dict[tuple[str, str], list[str]] = {}
        for (name, label, value), (answer, reply) in zip(targets, await self.asker.ask_all(questions)):
            if answer is None:
                self.report.unusable.append(
                    Unusable(
                        "step 4 (filter)", f"{name!r} value {value!r} of class {label!r}", _excerpt(reply), "value kept unchecked"
                    )
                )
            elif answer:
                related.setdefault((name, label), []).append(value)
        for (name, label), hits in related.items():
            cap = min(self.options["max_filtered_per_class"], len(values[name][label]) - 1)  # never empty a list
            if hits[:cap]:
                self.report.dropped.setdefault(name, {})[label] = hits[:cap]
            if hits[cap:]:
                self.report.kept_despite_yes.setdefault(name, {})[label] = hits[cap:]
            values[name][label] = [v for v in values[name][label] if v not in hits[:cap]]


def new_report(spec: BackendSpec) -> DiscoveryReport:
    """An empty report naming the model and host (never a local path or URL credentials)."""
    host = ", ".join(urlsplit(h).netloc for h in spec.hosts) if spec.kind == "endpoint" else spec.identity
    shown = Path(spec.model).name if spec.kind == "transformers" and spec.model else spec.model  # no local paths
    return DiscoveryReport(model=shown or "the served model", host=host, date=datetime.date.today().isoformat())


def journal_path_for(journal_dir: str | Path | None, labels: list[str], domain: str) -> Path:
    import datasets

    folder = journal_folder(journal_dir, cache_root=datasets.config.HF_DATASETS_CACHE)  # beside generation's
    payload = json.dumps({"labels": labels, "domain": domain}, ensure_ascii=False).encode("utf-8")
    return folder / f"discover-{hashlib.sha256(payload).hexdigest()[:16]}.sqlite"


def check_options(options: dict[str, int]) -> None:
    minimum = {
        "values_per_dimension": 1,
        "similar_per_class": 1,
        "max_dimensions": 1,
        "max_filtered_per_class": 0,
        "seed": 0,
        "max_concurrency": 1,
    }
    for key, low in minimum.items():
        value = options[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{key}: got {value!r}; use a whole number >= {low}")


def _check_labels(labels: list[str], domain: str) -> None:
    if len(labels) < 2 or not all(labels):
        raise ConfigError(f"labels: got {labels!r}; give at least two non-empty class names")
    repeated = [label for label in labels if labels.count(label) > 1]
    if repeated:
        raise ConfigError(f"labels: {repeated[0]!r} is listed twice; list each class once")
    if not isinstance(domain, str) or not domain.strip():
        raise ConfigError(f"domain: got {domain!r}; describe what one sample is, e.g. 'news articles'")


def discover_recipe(
    labels: list[str],
    *,
    domain: str,
    endpoint: str | list[str] | None = None,
    model: str | None = None,
    backend: str = "auto",
    provider: str | None = None,
    token: str | None = None,
    values_per_dimension: int = 10,
    similar_per_class: int = 3,
    max_dimensions: int = 5,
    max_filtered_per_class: int = 5,
    seed: int = 0,
    journal_dir: str | Path | None = None,
    max_concurrency: int = 8,
    name: str | None = None,
) -> DiscoveryResult:
    """Run the four discovery steps against an LLM; return the validated recipe and its commented YAML.

    ``token`` reaches a user's own endpoint only when passed (as in generation). ``name`` defaults
    to the domain as an identifier. Raises ``DiscoveryError`` when step 1 yields no dimension.
    """
    if isinstance(labels, str):
        raise ConfigError(f"labels: got the string {labels!r}; pass a list of class names")
    labels = [str(label).strip() for label in labels]
    _check_labels(labels, domain)
    domain = domain.strip()
    options = {
        "values_per_dimension": values_per_dimension,
        "similar_per_class": similar_per_class,
        "max_dimensions": max_dimensions,
        "max_filtered_per_class": max_filtered_per_class,
        "seed": seed,
        "max_concurrency": max_concurrency,
    }
    check_options(options)
    spec = BackendSpec.resolve(backend=backend, endpoint=endpoint, model=model, provider=provider)
    report = new_report(spec)
    recipe_name = name or re.sub(r"[^A-Za-z0-9]+", "_", domain).strip("_").lower() or "discovered"

    async def steps_1_to_4(asker: Asker, progress: Any) -> tuple[Steps, dict[str, dict[str | None, list[str]]]]:
        steps = Steps(asker, labels, domain, options, report)
        names = await steps.dimensions_and_similar()
        progress.set_description("Discovery step 3 (values)")
        values = await steps.values(names)
        progress.set_description("Discovery step 4 (filter)")
        await steps.filter(values)
        return steps, values

    steps, values = run_questions(
        steps_1_to_4,
        spec=spec,
        token=token,
        journal_path=journal_path_for(journal_dir, labels, domain),
        seed=seed,
        max_concurrency=max_concurrency,
        report=report,
        desc="Discovery step 1-2 (dimensions, similar classes)",
    )
    data = recipe_data(report, name=recipe_name, domain=steps.domain, labels=steps.labels, texts=steps.texts, values=values)
    text = recipe_yaml(data, report, options)
    recipe = parse_recipe(yaml.safe_load(text), origin="<discovered recipe>")
    return DiscoveryResult(recipe=recipe, yaml_text=text, report=report)
