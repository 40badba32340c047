"""A loopback TGI server that sometimes writes about the wrong class, like a sloppy generator.

``ScriptedLabels`` is ``tgi_server.TGIServer`` with a different ``compose``: a prompt about class
``c`` gets prose built from ``c``'s topic words, except about one request in ``WRONG_EVERY`` (by a
hash of the prompt and seed) that gets another class's words. ``topic_of(text)`` says whose words a
text is made of, so a test knows which kept rows are off-topic without trusting the label check.
Replies depend only on the request, so a journal replay gives the same rows.
"""

from __future__ import annotations

import random
import re
from typing import Any

from tgi_server import TGIServer
from tgi_text import digest

__all__ = ["TOPIC_WORDS", "WRONG_EVERY", "ScriptedLabels", "topic_of"]

WRONG_EVERY = 6
TOPIC_WORDS = {
    "weather": [
        "rain",
        "storm",
        "cloud",
        "forecast",
        "humid",
        "thunder",
        "drizzle",
        "breeze",
        "frost",
        "sunny",
        "snowfall",
        "hurricane",
        "degrees",
        "gust",
    ],
    "cooking": [
        "recipe",
        "oven",
        "simmer",
        "garlic",
        "flour",
        "butter",
        "skillet",
        "roast",
        "saucepan",
        "oregano",
        "whisk",
        "dough",
        "braise",
        "seasoning",
    ],
    "finance": [
        "stocks",
        "bond",
        "dividend",
        "portfolio",
        "inflation",
        "equity",
        "broker",
        "interest",
        "hedge",
        "earnings",
        "ledger",
        "yield",
        "audit",
    ],
}
_FILLER = ["the", "a", "of", "and", "in", "with", "on", "for", "this", "that", "every", "our", "some", "then", "also", "very"]
_LABEL = re.compile(r"about (\w+)")


def topic_of(text: str) -> str:
    words = text.lower().split()
    return max(TOPIC_WORDS, key=lambda topic: sum(word.strip(".,") in TOPIC_WORDS[topic] for word in words))


class ScriptedLabels(TGIServer):
    def compose(self, request: Any, behaviour: Any) -> tuple[str, str]:
        found = _LABEL.search(request.prompt)
        label = found.group(1) if found and found.group(1) in TOPIC_WORDS else "weather"
        rng = random.Random(digest("labels", request.prompt, request.seed))
        if digest("wrong", request.prompt, request.seed) % WRONG_EVERY == 0:
            label = rng.choice([other for other in TOPIC_WORDS if other != label])
        words = [rng.choice(TOPIC_WORDS[label]) if rng.random() < 0.7 else rng.choice(_FILLER) for _ in range(40)]
        return " ".join(words).capitalize() + ".", "scripted"
