"""Recipe loading and validation: each mistake gives one line naming the file, the field and the fix."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from attrprompt_builder.errors import RecipeError
from attrprompt_builder.recipe.model import load_recipe, parse_recipe

BASE = {
    "name": "tickets",
    "domain": "support ticket",
    "license": "cc-by-4.0",
    "labels": ["billing", "outage", {"name": "feature_request", "text": "feature request"}],
    "attributes": [
        {"name": "product", "values": ["mobile app", "web dashboard", 3]},
        {
            "name": "subtopic",
            "per_class": {"billing": ["refund"], "outage": ["login"], "feature_request": ["dark mode"]},
            "catch_all": "Others {{ dimension }} for {{ label_text }}.",
        },
    ],
    "similar": {"billing": ["refunds"]},
    "prompts": {
        "attributed": "Write a {{ domain }} about {{ label_text }} on the {{ product }}, focused on {{ subtopic }}; "
        "not {{ similar_classes | join(', ') }}.",
        "simple": "Write a {{ domain }} about {{ label_text }}.",
    },
}


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def load_error(tmp_path: Path, data: dict) -> str:
    path = write(tmp_path, data)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


def test_valid_recipe_loads_with_catch_all_and_defaults(tmp_path):
    recipe = load_recipe(write(tmp_path, BASE))
    assert recipe.label_names == ["billing", "outage", "feature_request"]
    assert recipe.label_text["feature_request"] == "feature request"
    assert recipe.values_for("product", "outage") == ("mobile app", "web dashboard", "3")
    assert recipe.values_for("subtopic", "feature_request") == ("dark mode", "Others subtopic for feature request.")
    assert recipe.generation.temperature == 1.0 and recipe.generation.top_p == 1.0
    assert parse_recipe(recipe.to_dict(), origin="again") == parse_recipe(recipe.to_dict(), origin="again")
    assert parse_recipe(recipe.to_dict()).fingerprint == recipe.fingerprint


def test_fingerprint_changes_with_content(tmp_path):
    other = copy.deepcopy(BASE)
    other["attributes"][0]["values"].append("desktop client")
    assert load_recipe(write(tmp_path, BASE)).fingerprint != parse_recipe(other).fingerprint


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["attributes"][1]["per_class"].update(biling=["x"]),
            "attributes[1] (subtopic).per_class: unknown label 'biling'",
        ),
        (lambda d: d["attributes"][0].update(values=[]), "attributes[0] (product).values: empty value list"),
        (
            lambda d: d["prompts"].update(attributed=d["prompts"]["attributed"] + " {{ tone }}"),
            "prompts.attributed: template uses undefined variable 'tone'",
        ),
        (lambda d: d["labels"].append("outage"), "labels[3]: duplicate label 'outage'"),
        (lambda d: d.pop("domain"), "domain: missing required field"),
        (lambda d: d.pop("license"), "license: missing required field"),
        (lambda d: d["similar"].update(nope=["a"]), "similar: unknown label 'nope'"),
        (lambda d: d["attributes"][0].update(values=["a", "a"]), "values[1]: duplicate value 'a'"),
        (lambda d: d["attributes"][1]["per_class"].pop("outage"), "no values for label 'outage'"),
        (
            lambda d: d["prompts"].update(simple="About {{ product }}"),
            "prompts.simple: template uses undefined variable 'product'",
        ),
        (lambda d: d["prompts"].update(attributed="About {{ label }} {{ subtopic }}"), "dimension 'product' is never used"),
        (lambda d: d.update(colour="red"), "colour: unknown field"),
        (lambda d: d["attributes"][0].update(name="text"), "'text' is reserved"),
        (lambda d: d["prompts"].update(attributed="{% if %}"), "prompts.attributed: template syntax error"),
        (lambda d: d.update(generation={"top_p": 2}), "generation.top_p: 2 is not a number in (0, 1]"),
    ],
)
def test_each_validation_error_is_one_clear_line(tmp_path, mutate, expected):
    data = copy.deepcopy(BASE)
    mutate(data)
    message = load_error(tmp_path, data)
    assert expected in message
    assert ";" in message  # every message carries a fix after the semicolon


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nlabels: [a, b\n", encoding="utf-8")
    with pytest.raises(RecipeError, match=r"broken.yaml: invalid YAML at line \d+"):
        load_recipe(path)


def test_missing_file_says_what_to_pass(tmp_path):
    with pytest.raises(RecipeError, match="file not found; pass a preset name or the path of a recipe YAML file"):
        load_recipe(tmp_path / "nope.yaml")


def test_multi_label_needs_one_label_map(tmp_path):
    data = copy.deepcopy(BASE)
    data["multi_label"] = True
    message = load_error(tmp_path, data)
    assert "needs exactly one `label_map` dimension" in message
    data["attributes"].append({"name": "topic", "label_map": {"refund policy": ["billing"], "downtime": ["outage"]}})
    data["prompts"]["attributed"] += " {{ topic }}"
    message = load_error(tmp_path, data)
    assert "no value implies label 'feature_request'" in message
    data["attributes"][2]["label_map"]["roadmap"] = ["feature_request", "billing"]
    recipe = load_recipe(write(tmp_path, data))
    assert recipe.values_for("topic", "billing") == ("refund policy", "roadmap")
    assert recipe.attribute("topic").label_map["roadmap"] == ("billing", "feature_request")  # recipe label order


def test_the_readme_recipe_example_is_valid_and_renders_cleanly():
    from attrprompt_builder.generation.prompts import PromptRenderer
    from attrprompt_builder.generation.sampling import AttributeSampler

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Recipes", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    recipe = parse_recipe(yaml.safe_load(block), origin="README.md")
    renderer = PromptRenderer(recipe)
    billing = renderer.render(AttributeSampler(recipe, seed=0).draw("billing", 0))
    outage = renderer.render(AttributeSampler(recipe, seed=0).draw("outage", 0))
    assert billing.endswith("4. It must be irrelevant to: refunds.")
    assert outage.splitlines()[-1].startswith("3. It is between") and "irrelevant" not in outage


# -- labels that prompts cannot tell apart, repeated YAML keys, templates that only fail when rendered ----------
@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["sci_tech", "sci tech"], "labels[1]: label 'sci tech' reads 'sci tech' in prompts, as label 'sci_tech' does"),
        (
            ["billing", {"name": "invoices", "text": "Billing"}],
            "labels[1]: label 'invoices' reads 'Billing' in prompts, as label 'billing' does",
        ),
        (["sci-tech", "Sci_Tech "], "labels[1]: label 'Sci_Tech' reads 'Sci Tech' in prompts, as label 'sci-tech' does"),
        (["Sports", "sports"], "labels[1]: label 'sports' differs from label 'Sports' only in case"),
    ],
)
def test_labels_that_prompts_cannot_tell_apart_are_refused(tmp_path, labels, expected):
    data = copy.deepcopy(BASE)
    data["labels"] = labels
    data["attributes"] = data["attributes"][:1]
    data["similar"] = {}
    data["prompts"]["attributed"] = "Write a {{ domain }} about {{ label_text }} on the {{ product }}."
    assert expected in load_error(tmp_path, data)


def test_a_repeated_yaml_key_is_refused_with_its_line(tmp_path):
    path = write(tmp_path, BASE)
    text = path.read_text(encoding="utf-8")
    path.write_text(text + "labels:\n- only_this\n", encoding="utf-8")
    line = text.count("\n") + 1
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert str(info.value) == (
        f"{path}: invalid YAML at line {line}, column 1: key 'labels' appears twice in one mapping; "
        "keep one of them (the second would silently replace the first)"
    )
    nested = text.replace("cc-by-4.0", "cc-by-4.0\ngeneration: {temperature: 0.7, temperature: 1.0}")
    path.write_text(nested, encoding="utf-8")
    with pytest.raises(RecipeError, match="key 'temperature' appears twice"):
        load_recipe(path)


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    path = write(tmp_path, BASE)
    path.write_text(
        path.read_text(encoding="utf-8") + "generation:\n  <<: &sampling {temperature: 0.7, top_p: 0.9}\n  temperature: 1.0\n",
        encoding="utf-8",
    )
    assert load_recipe(path).generation.temperature == 1.0


BROKEN_TEMPLATES = [
    (
        "prompts.attributed",
        "On the {{ product.name }}: {{ subtopic }}.",
        "prompts.attributed: the template fails for label 'billing' ('str object' has no attribute 'name'); every variable is plain text",
    ),
    (
        "prompts.attributed",
        "{{ product }} {{ subtopic }} {{ 1/0 }}",
        "prompts.attributed: the template fails for label 'billing' (ZeroDivisionError: division by zero); fix the template",
    ),
    (
        "prompts.simple",
        "{{ label.__class__ }}",
        "prompts.simple: the template breaks the sandbox for label 'billing' (access to attribute '__class__' of 'str' object is unsafe.); use only the recipe's variables",
    ),
    (
        "prompts.attributed",
        "{{ product }} {{ subtopic }}{% if label == 'outage' %}{{ label + 1 }}{% endif %}",
        "prompts.attributed: the template fails for label 'outage' (TypeError: ",
    ),
    (
        "attributes[1] (subtopic).catch_all",
        "Other {{ dimension * label }}",
        "attributes[1] (subtopic).catch_all: the template fails for label 'billing' (TypeError: ",
    ),
]


def broken(where: str, template: str) -> dict:
    data = copy.deepcopy(BASE)
    if where.startswith("prompts."):
        data["prompts"][where.split(".")[1]] = template
    else:
        data["attributes"][1]["catch_all"] = template
    return data


@pytest.mark.parametrize(("where", "template", "expected"), BROKEN_TEMPLATES)
def test_a_template_that_fails_when_rendered_is_refused_at_load(tmp_path, where, template, expected):
    assert expected in load_error(tmp_path, broken(where, template))


@pytest.mark.parametrize("command", [["show"], ["estimate"], ["generate", "--endpoint", "http://127.0.0.1:9", "-o", "out"]])
def test_show_estimate_and_generate_report_a_broken_template_in_one_line(tmp_path, command, capsys, monkeypatch):
    from attrprompt_builder import cli

    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, broken("prompts.attributed", "{{ product }} {{ subtopic }} {{ 1/0 }}"))
    assert cli.main([command[0], str(path), *command[1:]]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == f"error: {path}: prompts.attributed: the template fails for label 'billing' (ZeroDivisionError: division by zero); fix the template\n"
    )
    assert not (tmp_path / "out").exists()
