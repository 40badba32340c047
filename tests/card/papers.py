"""A tiny multi-label dataset (papers labelled ``ml``/``stats`` through a label map), for the card tests."""

from __future__ import annotations

import datasets

from attrprompt_builder.recipe.model import Recipe, parse_recipe

LABELS = ["ml", "stats"]


def papers_recipe() -> Recipe:
    return parse_recipe(
        {
            "name": "papers",
            "domain": "paper abstract",
            "license": "mit",
            "multi_label": True,
            "labels": LABELS,
            "attributes": [{"name": "subtopics", "label_map": {"bandits": ["ml", "stats"], "cnn": ["ml"]}}],
            "prompts": {"attributed": "{{ labels_text }}: {{ subtopics }}", "simple": "{{ labels_text }}"},
        }
    )


def papers_dataset(texts: list[str], labels: list[list[int]], subtopics: list[str]) -> datasets.Dataset:
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "labels": datasets.List(datasets.ClassLabel(names=LABELS)),
            "subtopics": datasets.Value("string"),
        }
    )
    return datasets.Dataset.from_dict({"text": texts, "labels": labels, "subtopics": subtopics}, features=features)
