"""A loopback TGI server that answers attribute-discovery questions like a sloppy chat model.

``ScriptedLLM`` is ``tgi_server.TGIServer`` with a different ``compose``: the prompts of
``attrprompt_builder.discover.steps`` get list and yes/no replies in deliberately messy shapes (preambles,
bold, bullets, JSON in fences, comma lines, duplicates, names that are no label, a first reply that
says nothing usable); every other prompt (generation) gets the base server's prose. Replies depend
only on the prompt and how often it was asked, so what the journal replays is what was paid for.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from typing import Any

from tgi_server import TGIServer

__all__ = ["NEWS_LABELS", "RELATED_MARKER", "ScriptedLLM"]

NEWS_LABELS = ("world", "sports", "business", "sci_tech")
# A subtopic with this word is "related to a similar class" for the filter step.
RELATED_MARKER = "Market"
# world gets this many related subtopics: more than the default cap of 5.
WORLD_RELATED = 7

_DIMENSIONS_REPLY = """Here are 5 attribute dimensions that make news articles diverse:

1. **Subtopic**: the specific event or issue the article covers
2. **Writing style** - the tone and form of the article
3. Location
4. Length: how long the article is
5. subtopic

I hope this helps! Let me know if you need more."""

_SUBTOPIC_WORDS = {
    "world": ["Embassy talks", "Border treaty", "Refugee convoy", "Island summit", "Ceasefire monitors"],
    "sports": ["Marathon upset", "Penalty shootout", "Doping hearing", "Transfer saga", "Rookie debut"],
    "business": ["Merger vote", "Layoff wave", "Union deal", "Supply shortage", "Airline bailout"],
    "sci_tech": ["Quantum chip", "Comet probe", "Gene therapy", "Battery recall", "Satellite launch"],
}
_STYLES = ["investigative", "op-ed", "feature", "breaking bulletin", "interview", "explainer"]
_LOCATIONS = ["Kenya", "Peru", "Norway", "Vietnam", "Chile", "Ghana", "Nepal", "Portugal", "Fiji", "Uruguay"]
_SIMILAR = {  # messy on purpose: label text and name forms, an invented class, the class itself
    "world": '```json\n["Business", "sci tech", "World", "Entertainment"]\n```',
    "sports": "- World\n- **business**",
    "business": "Sure! Here you go:\n1. Sci/Tech\n2) World (politics)\n3. Economy",
    "sci_tech": "Business, World",
}


class ScriptedLLM(TGIServer):
    """``TGIServer`` whose discovery replies are scripted; ``asked`` counts questions by prompt."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.asked: Counter[str] = Counter()
        self.dimension_reply: str | None = None  # set to script an unusable step 1
        self._asked_lock = threading.Lock()

    def compose(self, request: Any, behaviour: Any) -> tuple[str, str]:
        prompt = request.prompt
        with self._asked_lock:
            self.asked[prompt] += 1
            times = self.asked[prompt]
        reply = self._discovery_reply(prompt, times)
        if reply is None:
            return super().compose(request, behaviour)
        return reply, "scripted"

    def _discovery_reply(self, prompt: str, times: int) -> str | None:
        if "most important attribute dimensions" in prompt:
            return self.dimension_reply if self.dimension_reply is not None else _DIMENSIONS_REPLY
        if match := re.search(r"values of the attribute '([^']+)' depend on the class", prompt):
            return {
                "subtopic": "Yes, it depends on the class.",
                "writing style": "It depends." if times == 1 else "**No**",  # unusable first, then an answer
                "location": "Answer: no",
            }.get(match.group(1), "No.")
        if match := re.search(r"classification task: (.+)\.\nWhich .+ most similar to '([^']+)'", prompt):
            label = match.group(2).replace(" ", "_")
            if label == "sports" and times == 1:
                return "That is hard to say without more context."
            others = [name for name in match.group(1).split(", ") if name != match.group(2)]
            return _SIMILAR.get(label, "\n".join(f"- {name}" for name in others))
        if match := re.search(r"List (\d+) diverse (.+?) for .+? about (.+?)\.", prompt):
            return _class_values(int(match.group(1)), match.group(2), match.group(3).replace(" ", "_"))
        if match := re.search(r"List (\d+) diverse (.+?) for ", prompt):
            return _shared_values(int(match.group(1)), match.group(2))
        if match := re.search(r"is the .+? '(.+)' related to any of these classes", prompt):
            value = match.group(1)
            if "ambiguous" in value.lower():
                return "Yes and no."
            return "Yes, it is related." if RELATED_MARKER.lower() in value.lower() else "No."
        return None


def _class_values(count: int, dimension: str, label: str) -> str:
    related = WORLD_RELATED if label == "world" else 1
    values = [f"{RELATED_MARKER} angle {i}" for i in range(1, related + 1)]
    values += _SUBTOPIC_WORDS.get(label, [f"{label} story {i}" for i in range(1, 6)])
    if label == "sports":
        values.append("Ambiguous rivalry")
    values = values[:count]
    lines = [f"Here are {count} {dimension} for {label}:", ""]
    lines += [f"{i}. **{value}**" if i % 2 else f'{i}) "{value}".' for i, value in enumerate(values, 1)]
    lines.append(f"{len(values) + 1}. {values[0].upper()}")  # a duplicate in another case
    lines.append("These cover a wide range of stories.")
    return "\n".join(lines)


def _shared_values(count: int, dimension: str) -> str:
    if dimension == "location":
        return json.dumps({"locations": _LOCATIONS[:count]})
    styles = _STYLES[:count]
    return f"Here are some {dimension}s: " + ", ".join(styles + styles[:1]) + "."
