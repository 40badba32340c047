"""The paper's reply cleaning and refusal filter, against outputs of the reference's own ``clean_str``.

Each expected string below is what ``clean_str`` of yueyu1030/AttrPrompt@3a05ffd (gen_train_data/gpt_gen_*.py:
two ``re.sub`` calls and ``strip``) returned for the input, recorded from running it; ``ascii_squeeze`` must
give the same bytes. Nothing is transliterated: "Café" becomes "Caf".
"""

from __future__ import annotations

import pytest

from attrprompt_builder.filters.screening import ascii_squeeze, check_reply_substrings, screen_reply
from attrprompt_builder.recipe.presets import load_preset

REFERENCE_CLEANING = [
    ("Café au lait", "Caf au lait"),
    ("naïve résumé — déjà vu", "na ve r sum d j vu"),
    ("Line one.\nLine two.\r\n\r\nLine three.", "Line one. Line two. Line three."),
    ("**Bold** and _italic_ and `code`", "Bold and italic and code"),
    ("# Title\n\n- item one\n- item two", "Title item one item two"),
    ("[a link](https://example.com/x?y=1)", "a link (https example.com x?y 1)"),
    ("Great movie! 🎬🍿 Loved it 😍", "Great movie! Loved it"),
    ("“Curly quotes” and ‘single’ ones", "Curly quotes and single ones"),
    ("Tabs\tand  double  spaces", "Tabs and double spaces"),
    ("50% off: $20 & more; see #3 @home", "50 off 20 more see 3 home"),
    ("e.g. (see above), isn't it?", "e.g. (see above), isn't it?"),
    ("🎉🎉🎉", ""),
    ("Straße in Zürich", "Stra e in Z rich"),
    ("ＦＵＬＬＷＩＤＴＨ text", "text"),
]


@pytest.mark.parametrize(("raw", "expected"), REFERENCE_CLEANING)
def test_ascii_squeeze_is_the_references_clean_str(raw: str, expected: str) -> None:
    assert ascii_squeeze(raw) == expected


ATTRIBUTED = load_preset("agnews").paper.refusals["attributed"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("raw", "dropped"),
    [
        ("I apologize, but I cannot write that.", True),
        ("Sorry to see the market fall, analysts said.", True),  # a bare substring, as the reference tests it
        ("The minister said she was sorry.", True),
        ("As an AI language model, I can't.", True),
        ("I cannot perform this task.", True),
        ("SORRY state of the league.", False),  # case-sensitive, as in the reference
        ("I'm unable to help with that.", False),  # not one of the reference's phrases
    ],
)
def test_paper_refusal_substrings(raw: str, dropped: bool) -> None:
    assert (check_reply_substrings(raw, ATTRIBUTED) is not True) == dropped


def test_paper_screening_tests_the_raw_reply_then_cleans() -> None:
    # A curly apostrophe (U+2019) in "I\u2019m sorry": the substring test sees the raw reply, as the reference did.
    text, verdict = screen_reply("Sorry, but the plot drags; I’m sorry I went.", refusals=ATTRIBUTED)
    assert verdict == (False, "refusal") and text == "Sorry, but the plot drags I m sorry I went."
    # SimPrompt: the reference filters nothing; only a reply that cleaning empties is dropped (a listed deviation).
    assert screen_reply("Sorry, but the plot drags.", refusals=()) == ("Sorry, but the plot drags.", True)
    assert screen_reply("🎉🎉🎉", refusals=()) == ("", (False, "empty"))


def test_default_screening_keeps_paragraphs_unless_asked() -> None:
    raw = "Café owners loved it.\n\nA **must** see 🎬."
    assert screen_reply(raw) == ("Café owners loved it.\n\nA **must** see 🎬.", True)
    assert screen_reply(raw, ascii_only=True) == ("Caf owners loved it. A must see .", True)
