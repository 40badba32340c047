"""One prompt per preset and mode, compared with the reference code's wording (issue 14).

``REFERENCE`` holds what the f-strings of yueyu1030/AttrPrompt@3a05ffd (gen_train_data/gpt_gen_attrprompt.py,
gpt_gen_simprompt.py and their _multi_label versions) produce for the draws in ``DRAWS``, byte for byte:
the indentation its line continuations put into the strings, doubled spaces and all. Paper mode must send
those words and that punctuation; ``layout`` drops only the source-code whitespace (a deviation the card
lists). The default mode's prompts are pinned in ``DEFAULT`` and, where the issue found them to match apart
from formatting, compared word for word with the reference.
"""

from __future__ import annotations

import re

import pytest

from attrprompt_builder.generation.prompts import PromptRenderer
from attrprompt_builder.generation.sampling import AttributeDraw
from attrprompt_builder.recipe.presets import load_preset


def draw(label: str, values: dict[str, str], labels: tuple[str, ...] = (), lists: dict | None = None) -> AttributeDraw:
    return AttributeDraw(label, 0, values, labels or (label,), lists or {})


ML, CV = "machine_learning", "computer_vision_and_pattern_recognition"
TECHNIQUES = ("Stochastic gradient descent", "Convolutional neural networks")
ARXIV_VALUES = {"subtopics": "optimization techniques for computer vision", "length": "100", "style": "Experimental"}
DRAWS = {
    "agnews": draw("sci_tech", {"subtopics": "Quantum chips", "length": "30", "style": "Feature writing", "location": "Kenya"}),
    "nyt": draw("federal_budget", {"subtopics": "Deficit talks", "length": "100", "style": "Op-Eds", "location": "Europe"}),
    "sst2": draw("negative", {"genre": "comedy", "subtopics": "The acting", "length": "30", "style": "Sarcastic"}),
    "yelp": draw("positive", {"cuisine": "Thai", "subtopics": "Friendly service", "length": "30", "style": "Casual"}),
    "amazon": draw(
        "office_products",
        {
            "product_name": "Memo pads",
            "brands": "Avery",
            "length": "30",
            "experience": "Excellent: beyond expectations.",
            "style": "Recommendation Review",
        },
    ),
    "reddit": draw("premed", {"experience": "MCAT prep", "resource": "AAMC website.", "length": "30", "style": "Help/Advice"}),
    "stackexchange": draw(
        "unity", {"scenario": "Physics jitter", "depth": "Beginner level.", "length": "30", "style": "Concise"}
    ),
    # Paper mode: the prompt order of labels and techniques is the reference's shuffled one.
    "arxiv": draw(ML, {**ARXIV_VALUES, "technique": "; ".join(TECHNIQUES)}, (ML, CV), {"technique": TECHNIQUES}),
}
# The reference's SimPrompt for arxiv names the class and min(4, Zipf(2.5)) - 1 random others.
SIMPLE_DRAWS = {**DRAWS, "arxiv": draw(ML, {}, (ML, "artificial_intelligence", "robotics"))}

# fmt: off
REFERENCE = {
    "attributed": {
        "agnews": "Give a synthetic sample of news on sci tech following the requirements below: \n                            1. should focus on 'Quantum chips';\n                             2. should be in length between 30 words and 80 words;\n                             3. The writing style of the news should be 'Feature writing';\n                             4. The location of the news should be in Kenya. \n",
        # The paper's fifth line needs similar lists, which nyt lacks: the preset's prompt stops after line 4
        # (tests/discover/test_similar_only.py checks the line once the lists exist).
        "nyt": "Give a synthetic sample of news in NYT on federal budget following the requirements below: \n                            1. should focus on 'Deficit talks';\n                             2. should be in length between 100 words and 150 words;\n                             3. The writing style of the news should be 'Op-Eds';\n                             4. The location of the news should be in Europe; \n",
        "sst2": "Write a negative review for a movie, following the requirements below: \n                             1. the overall rating should be negative;\n                             2. the review should discuss about a comedy movie;  \n                             3. the review should focus on 'The acting'; \n                             4. should be in length between 30 words and 80 words;\n                             5. the style of the review should be 'Sarcastic'.",
        "yelp": "Write a positive review for a restaurant, following the requirements below: \n                             1. the overall review should be positive';\n                             2. should be a 'Thai' restaurant';  \n                             3. should focus on 'Friendly service'; \n                             4. should be in length between 30 words and 80 words;\n                             5. the style of the review should be 'Casual'.",
        "amazon": "Write a review for  office products product in Amazon, following the requirements below: \n                             1. the review should be about the product of 'Memo pads';\n                             2. the brand of the office products product should be 'Avery'; \n                             3. should be in length between 30 words and 80 words;\n                             4. should describe the usage experience: Excellent: beyond expectations.;\n                             5. the review should be focus on 'Recommendation Review';\n                             6. the review must be relevant to office products and irrelevant to: magazines,camera photo,kitchen,cell phones service,computer video games.",
        "reddit": "Give a synthetic sample of post in reddit on premed community following the requirements below: \n                            1. should focus on 'MCAT prep';\n                             2. should be in length between 30 words and 80 words;\n                             3. The writing style of the post should be 'Help/Advice';\n                             4. should mention the resource of AAMC website.; \n                             5. The post must be relevant to premed community and irrelevant to the following community: Personal finance Canada,ADHD,Techsupport,What car should I buy,Metal Gear Solid.",
        "stackexchange": "Give a synthetic sample of question post in stackexchange on unity following the requirements below: \n                            1. should focus on the scenario of 'Physics jitter';\n                             2. should be in length between 30 words and 80 words;\n                             3. The question should be in Beginner level.;\n                             4. The writing style of the question should be 'Concise';\n                             5. The post must be relevant to unity and irrelevant to: javascript,animation,game-design,procedural-generation,physics.",
        "arxiv": "Write an abstract of ['machine_learning', 'computer_vision_and_pattern_recognition'] paper in arXiv, following the requirements below: \n                         1. the paper abstract should focus on 'optimization_techniques_for_computer_vision';\n                         2. should be in length between 100 words and 150 words;\n                         3. the paper should use the techniques relevant to ['Stochastic gradient descent', 'Convolutional neural networks'];\n                         4. the style of the paper should be 'Experimental'",
    },
    "simple": {
        "agnews": "Suppose you are a writer for news. Please give an example of a synthetic news about  sci tech.",
        "nyt": "Suppose you are a writer for news. Please give an example of a synthetic news about  federal budget.",
        "sst2": "Suppose you are a writer for movie review. Please give an example of a synthetic negative movie review.",
        "yelp": "Suppose you are a writer for restaurant review. Please give an example of a synthetic positive restaurant review.",
        "amazon": "Suppose you are a writer for review. Please give an example of a synthetic review about a product of office products.",
        "reddit": "Suppose you are a writer for posts in reddit. Please give an example of a synthetic posts in reddit about  premed.",
        "stackexchange": "Suppose you are a writer for posts in stackexchange. Please give an example of a synthetic posts in stackexchange about  unity.",
        "arxiv": "Suppose you are a writer for scientific paper abstract. Give a synthetic scientific paper abstract about  machine learning, artificial intelligence,robotics.",
    },
}

DEFAULT = {
    "attributed": {
        "agnews": "Give a synthetic sample of news on sci tech following the requirements below:\n1. Should focus on 'Quantum chips'.\n2. Should be in length between 30 words and 80 words.\n3. The writing style of the news should be 'Feature writing'.\n4. The location of the news should be in Kenya.",
        "nyt": "Give a synthetic sample of news in NYT on federal budget following the requirements below:\n1. Should focus on 'Deficit talks'.\n2. Should be in length between 100 words and 150 words.\n3. The writing style of the news should be 'Op-Eds'.\n4. The location of the news should be in Europe.",
        "sst2": "Write a negative review for a movie, following the requirements below:\n1. The overall rating should be negative.\n2. The review should discuss about a comedy movie.\n3. The review should focus on 'The acting'.\n4. Should be in length between 30 words and 80 words.\n5. The style of the review should be 'Sarcastic'.",
        "yelp": "Write a positive review for a restaurant, following the requirements below:\n1. The overall review should be positive.\n2. Should be a 'Thai' restaurant.\n3. Should focus on 'Friendly service'.\n4. Should be in length between 30 words and 80 words.\n5. The style of the review should be 'Casual'.",
        "amazon": "Write a review for office products product in Amazon, following the requirements below:\n1. The review should be about the product of 'Memo pads'.\n2. The brand of the office products product should be 'Avery'.\n3. Should be in length between 30 words and 80 words.\n4. Should describe the usage experience: Excellent: beyond expectations.\n5. The review should focus on 'Recommendation Review'.\n6. The review must be relevant to office products and irrelevant to: magazines, camera photo, kitchen, cell phones service, computer video games.",
        "reddit": "Give a synthetic sample of post in reddit on premed community following the requirements below:\n1. Should focus on 'MCAT prep'.\n2. Should be in length between 30 words and 80 words.\n3. The writing style of the post should be 'Help/Advice'.\n4. Should mention the resource of AAMC website.\n5. The post must be relevant to premed community and irrelevant to the following communities: Personal finance Canada, ADHD, Techsupport, What car should I buy, Metal Gear Solid.",
        "stackexchange": "Give a synthetic sample of question post in stackexchange on unity following the requirements below:\n1. Should focus on the scenario of 'Physics jitter'.\n2. Should be in length between 30 words and 80 words.\n3. The question should be in Beginner level.\n4. The writing style of the question should be 'Concise'.\n5. The post must be relevant to unity and irrelevant to: javascript, animation, game-design, procedural-generation, physics.",
        # One technique per label, in the labels' order; the exclusion line of a released similar list.
        "arxiv": "Write an abstract of a Computer Vision and Pattern Recognition, Machine Learning paper in arXiv, following the requirements below:\n1. The paper abstract should focus on 'optimization techniques for computer vision'.\n2. Should be in length between 100 words and 150 words.\n3. The paper should use the techniques relevant to Convolutional neural networks; Stochastic gradient descent.\n4. The style of the paper should be 'Experimental'.\n5. The paper must be relevant to Computer Vision and Pattern Recognition, Machine Learning and irrelevant to: Artificial intelligence, Computation and language, Neural and evolutionary computing, Information theory.",
    },
    "simple": {
        "agnews": "Suppose you are a writer for news. Please give an example of a synthetic news about sci tech.",
        "nyt": "Suppose you are a writer for news. Please give an example of a synthetic news about federal budget.",
        "sst2": "Suppose you are a writer for movie review. Please give an example of a synthetic negative movie review.",
        "yelp": "Suppose you are a writer for restaurant review. Please give an example of a synthetic positive restaurant review.",
        "amazon": "Suppose you are a writer for product review. Please give an example of a synthetic product review about a product of office products.",
        # Issue 14: the dataset's context stays ("unity" alone is not a topic).
        "reddit": "Suppose you are a writer for posts in reddit. Please give an example of a synthetic reddit post in the premed community.",
        "stackexchange": "Suppose you are a writer for question posts in stackexchange. Please give an example of a synthetic question post in stackexchange about unity.",
        "arxiv": "Suppose you are a writer for paper abstract. Please give an example of a synthetic paper abstract about Machine Learning.",
    },
}
# fmt: on
# The default mode draws arxiv's labels in the recipe's order and one technique per label in that order.
DEFAULT_DRAWS = {
    **DRAWS,
    "arxiv": draw(ML, {**ARXIV_VALUES, "technique": "; ".join(TECHNIQUES[::-1])}, (CV, ML), {"technique": TECHNIQUES[::-1]}),
}


def layout(text: str) -> str:
    """The reference's string without its source-code whitespace: lines stripped, space runs single."""
    return "\n".join(" ".join(line.split()) for line in text.strip().split("\n"))


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.casefold())


CASES = [(name, mode) for mode in ("attributed", "simple") for name in sorted(DRAWS)]


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_paper_mode_sends_the_reference_wording(name: str, mode: str) -> None:
    renderer = PromptRenderer(load_preset(name), prompting=mode, paper=True)
    sample = (DRAWS if mode == "attributed" else SIMPLE_DRAWS)[name]
    assert renderer.render(sample) == layout(REFERENCE[mode][name])


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_default_mode_prompt(name: str, mode: str) -> None:
    recipe = load_preset(name)
    sample = DEFAULT_DRAWS[name] if mode == "attributed" else draw(DRAWS[name].label, {})
    assert PromptRenderer(recipe, prompting=mode).render(sample) == DEFAULT[mode][name]


# amazon and reddit are left out: the default mode fixed the grammar ("should be focus on", "following community").
@pytest.mark.parametrize("name", ["agnews", "nyt", "sst2", "yelp", "stackexchange"])
def test_default_attributed_prompts_have_the_reference_words(name: str) -> None:
    """Where the issue found the prompts to match apart from formatting, the words are the reference's."""
    assert words(DEFAULT["attributed"][name]) == words(REFERENCE["attributed"][name])


def test_reference_strings_differ_from_the_rendered_ones_only_in_whitespace() -> None:
    # Guards the comparison above: layout() must not hide a difference in words or punctuation.
    for mode, by_name in REFERENCE.items():
        for text in by_name.values():
            assert re.sub(r"\s+", "", layout(text)) == re.sub(r"\s+", "", text), mode


def test_paper_mode_keeps_a_released_similar_list_as_it_is() -> None:
    # stackexchange's released list for software-engineering names the class itself; the reference sent it so.
    recipe = load_preset("stackexchange")
    sample = draw("software-engineering", {**DRAWS["stackexchange"].values})
    paper_line = PromptRenderer(recipe, paper=True).render(sample).split("\n")[-1]
    default_line = PromptRenderer(recipe).render(sample).split("\n")[-1]
    assert paper_line.endswith(",".join(recipe.similar["software-engineering"]) + ".")
    assert "software-engineering" in paper_line.split("irrelevant to: ")[1]
    assert "software-engineering" not in default_line.split("irrelevant to: ")[1]
