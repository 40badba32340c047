"""A loopback TGI server that writes like a model with the AttrPrompt paper's two failures, on purpose.

``ScriptedPlaces`` is ``tgi_server.TGIServer`` with a different ``compose``:

- an attributed prompt gets prose of the word range it asks for, ending "Reported from <the requested
  location>.", except that a prompt asking for ``IGNORED_LENGTH`` words gets a text far above its
  range (a model that ignores the length for that value);
- a simple (SimPrompt) prompt, which names no place, always gets "Reported from the United States."
  (the regional bias the paper measured).

Replies depend only on the request, so a journal replay gives the same rows.
"""

from __future__ import annotations

import re
from typing import Any

from tgi_server import TGIServer
from tgi_text import reply_text

__all__ = ["IGNORED_LENGTH", "ScriptedPlaces", "TOO_LONG"]

IGNORED_LENGTH = 30
TOO_LONG = 160  # words written when the prompt asks for IGNORED_LENGTH
_RANGE = re.compile(r"between (\d+) words and (\d+) words")
_LOCATION = re.compile(r"location of the \w+ should be in (.+?)\.?$", re.MULTILINE)


def _words(prompt: str, seed: int | None, count: int) -> list[str]:
    words: list[str] = []
    round_ = 0
    while len(words) < count:
        words += reply_text(f"{prompt} #{round_}", seed=seed, temperature=1.0).split()
        round_ += 1
    return words[:count]


class ScriptedPlaces(TGIServer):
    def compose(self, request: Any, behaviour: Any) -> tuple[str, str]:
        prompt = request.prompt
        location = _LOCATION.search(prompt)
        asked = _RANGE.search(prompt)
        if location is None or asked is None:  # a simple prompt
            ending = "Reported from the United States."
            return " ".join(_words(prompt, request.seed, 40)) + " " + ending, "scripted"
        low, high = int(asked.group(1)), int(asked.group(2))
        ending = f"Reported from {location.group(1).strip()}."
        target = TOO_LONG if low == IGNORED_LENGTH else (low + high) // 2
        body = _words(prompt, request.seed, target - len(ending.split()))
        return " ".join(body) + " " + ending, "scripted"
