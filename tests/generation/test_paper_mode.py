"""Paper-mode builds end to end: the real builder over HTTP against a loopback TGI server whose replies to
chosen samples are scripted (a copy of an earlier reply, a reply with "sorry" in it, markdown and accents).

The reference (gpt_gen_simprompt.py) filters nothing in SimPrompt and has no near-duplicate filter; its
attributed generation drops replies holding one of its refusal substrings; both clean every reply with its
``clean_str``.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
from tgi_server import TGIServer

import attrprompt_builder  # noqa: F401  registers the "attrprompt" dataset
from attrprompt_builder import AttrPromptBuilder, cli
from attrprompt_builder.dataset.config import AttrPromptConfig
from attrprompt_builder.errors import ConfigError
from attrprompt_builder.generation.sampling import request_seed
from attrprompt_builder.pipeline import generate_folder

REPLY = "Café owners loved the film's 'quiet' charm!\n\nA **must** see 🎬."
SORRY = "Sorry, but the plot drags; I'm sorry I went."
APOLOGY = "I apologize for nothing: a bold, brave film."
# What the reference's clean_str makes of them (recorded from running it).
CLEANED = {REPLY: "Caf owners loved the film's 'quiet' charm! A must see .", SORRY: "Sorry, but the plot drags I'm sorry I went."}


class Scripted(TGIServer):
    """Samples 0, 1, 2 ... of class ``negative`` (seed 0) get the given replies; the rest the server's prose."""

    def __init__(self, replies: tuple[str, ...]) -> None:
        super().__init__()
        self.script = {request_seed(0, "negative", i): text for i, text in enumerate(replies)}
        self.max_tokens: set[int | None] = set()

    def compose(self, request, behaviour):
        self.max_tokens.add(request.max_tokens)
        text = self.script.get(request.seed)
        return (text, "scripted") if text is not None else super().compose(request, behaviour)


@pytest.fixture
def scripted(request):
    with Scripted(request.param) as server:
        yield server


def rows(folder: Path) -> datasets.Dataset:
    return datasets.Dataset.from_parquet(sorted(str(p) for p in (folder / "data").glob("*.parquet")))


@pytest.mark.parametrize("scripted", [(REPLY, REPLY, SORRY)], indirect=True)
def test_paper_simprompt_keeps_a_duplicate_and_a_sorry_reply(scripted, tmp_path):
    folder = generate_folder(
        "sst2", tmp_path / "paper", endpoint=scripted.url, samples_per_class=3, prompting="simple",
        fidelity="paper", embedder="ngram",  # the card measures with it; paper mode has no dedup
    )  # fmt: skip
    negative = [row["text"] for row in rows(folder) if row["label"] == 0]
    assert negative == [CLEANED[REPLY], CLEANED[REPLY], CLEANED[SORRY]]
    assert scripted.max_tokens == {512}  # gpt_gen_simprompt.py's max_tokens
    record = json.loads((folder / "generation.json").read_text(encoding="utf-8"))
    generation = record["generation"]
    assert generation["fidelity"] == "paper" and generation["dedup_threshold"] is None
    assert generation["refusal_filter"] == "the paper's substrings []"
    assert generation["cleaning"].startswith("ascii_squeeze")
    assert any("'3D printing' stays whole" in line for line in generation["paper_deviations"])
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "Built in **paper mode**" in card and "| Fidelity" in card and "3D printing" in card

    # The default mode on the same replies: the copy is a near-duplicate and "Sorry, but" opens a refusal.
    default = generate_folder(
        "sst2", tmp_path / "default", endpoint=scripted.url, samples_per_class=3, prompting="simple",
        embedder="ngram", card=False,
    )  # fmt: skip
    negative = [row["text"] for row in rows(default) if row["label"] == 0]
    assert negative[0] == REPLY and REPLY not in negative[1:] and SORRY not in negative
    stats = json.loads((default / "generation.json").read_text(encoding="utf-8"))["stats"]
    assert stats["dropped"]["exact_duplicate"] == 1 and stats["dropped"]["refusal"] == 1


@pytest.mark.parametrize("scripted", [(SORRY, APOLOGY, REPLY)], indirect=True)
def test_paper_attributed_build_drops_the_reference_phrases(scripted, tmp_path):
    builder = AttrPromptBuilder(
        config_name="sst2", endpoint=scripted.url, samples_per_class=1, fidelity="paper", cache_dir=str(tmp_path)
    )
    builder.download_and_prepare()
    negative = [row for row in builder.as_dataset(split="train") if row["label"] == 0]
    assert [row["text"] for row in negative] == [CLEANED[REPLY]]  # samples 0 and 1 were dropped and replaced
    assert negative[0]["prompt"].startswith("Write a negative review for a movie, following the requirements below:\n1. the")
    assert scripted.max_tokens == {2048}  # gpt_gen_attrprompt.py's max_tokens
    stats = builder.stats
    assert stats is not None and stats.dropped["refusal"] == 2


def test_an_option_paper_mode_fixes_is_refused_naming_both(tmp_path, capsys):
    with pytest.raises(
        ConfigError, match=r"^dedup_threshold: got 0\.9, which --paper .* drop one of dedup_threshold and --paper"
    ):
        AttrPromptConfig(name="sst2", fidelity="paper", dedup_threshold=0.9)
    for flags in (["--sampling", "balanced"], ["--max-new-tokens", "100"], ["--temperature", "0.7"]):
        status = cli.main(["generate", "sst2", "--paper", *flags, "-o", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert status == 1 and err.count("\n") == 1 and "--paper" in err and flags[0] in err
    # What paper mode would set anyway is accepted: dedup off, the paper's max_tokens, temperature 1.
    AttrPromptConfig(name="sst2", fidelity="paper", dedup_threshold="off", max_new_tokens=2048, temperature=1.0)


def test_paper_mode_needs_a_recipe_with_a_paper_section(tmp_path):
    recipe = tmp_path / "task.yaml"
    recipe.write_text(
        "name: task\ndomain: note\nlicense: other\nlabels: [a, b]\n"
        "prompts: {attributed: 'Write a {{ domain }} about {{ label_text }}.', simple: 'About {{ label_text }}.'}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="has no `paper:` section"):
        AttrPromptConfig(config=str(recipe), fidelity="paper")


def test_show_and_estimate_in_paper_mode(capsys):
    assert cli.main(["show", "arxiv", "--paper", "-k", "2"]) == 0
    shown = capsys.readouterr().out
    assert "Write an abstract of ['computer_vision_and_pattern_recognition'] paper in arXiv" in shown
    assert "irrelevant" not in shown
    assert cli.main(["estimate", "arxiv", "--fidelity", "paper", "-n", "1"]) == 0
    assert "rows to keep               1,740" in capsys.readouterr().out  # one per subtopic, as the reference loop
    assert cli.main(["estimate", "arxiv", "-n", "1"]) == 0
    assert "rows to keep                  98" in capsys.readouterr().out
