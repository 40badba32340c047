"""A loopback TGI server that sometimes writes about the wrong class, and judges texts truthfully.

``ScriptedJudgeLLM`` is ``tgi_server.TGIServer`` with a different ``compose``, for builds of
``TICKETS_RECIPE``. A generation prompt ("Write a ... about <class>.") gets a reply about the class
asked, except for ``off_class_rate`` of them (decided by a hash of the prompt and seed, so a rerun
gets the same replies) which are about the next class instead. Which class a reply is about is
recognisable from its text: it opens with the class's topic sentence (``TOPIC_SENTENCES``), and it
names the subtopic it was written about. A judge question gets the truth read from the quoted text:
the class whose topic sentence it carries, and "yes" exactly when the text names the subtopic or
tone the question asks about. With a ``response_format`` the answer is the JSON its schema asks for;
without one, a sentence (``plain_label_reply``) that the judge must parse.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tgi_server import TGIServer
from tgi_text import digest, fraction, reply_text

__all__ = ["LABELS", "TICKETS_RECIPE", "TOPIC_SENTENCES", "ScriptedJudgeLLM", "topic_of"]

LABELS = ("billing", "outage", "shipping", "account")
TOPIC_SENTENCES = {
    "billing": "I was charged twice on my last invoice.",
    "outage": "Your service has been down since this morning.",
    "shipping": "My parcel never arrived at my door.",
    "account": "I cannot change the email address on my profile.",
}
SUBTOPICS = {
    "billing": ["double charge", "refund request", "wrong currency"],
    "outage": ["login failure", "slow pages", "timeouts"],
    "shipping": ["lost parcel", "late delivery", "wrong address"],
    "account": ["password reset", "email change", "two-factor setup"],
}
TICKETS_RECIPE = f"""
name: tickets
domain: customer support ticket
license: other
labels: [billing, outage, shipping, account]
attributes:
  - name: subtopic
    per_class: {json.dumps(SUBTOPICS)}
    catch_all: "Others {{{{ dimension }}}} for {{{{ label_text }}}}."
  - name: tone
    values: [angry, polite, confused]
  - name: length
    values: [30, 60]
prompts:
  attributed: |
    Write a {{{{ domain }}}} about {{{{ label_text }}}}.
    1. It is about '{{{{ subtopic }}}}'.
    2. Its tone is '{{{{ tone }}}}'.
    3. It is between {{{{ length }}}} and {{{{ length | int + 50 }}}} words long.
  simple: "Write a {{{{ domain }}}} about {{{{ label_text }}}}."
generation: {{temperature: 1.0, top_p: 1.0, max_new_tokens: 200}}
"""

_ASKED = re.compile(r"^Write a .+? about (\w+)\.", re.M)
_QUOTED = re.compile(r'"""\n(.*)\n"""', re.S)
_REQUIREMENT = re.compile(r"follow this requirement: its (\w+) is '(.+?)'\?")


def topic_of(text: str) -> str | None:
    """The class a text is about: the one whose topic sentence it carries."""
    return next((label for label, sentence in TOPIC_SENTENCES.items() if sentence in text), None)


class ScriptedJudgeLLM(TGIServer):
    """``TGIServer`` whose replies are on the wrong class ``off_class_rate`` of the time and whose judging is truthful."""

    def __init__(self, *, off_class_rate: float = 0.2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.off_class_rate = off_class_rate

    def compose(self, request: Any, behaviour: Any) -> tuple[str, str]:
        prompt = request.prompt
        if "Which one of these classes does the" in prompt or "Which of these classes apply" in prompt:
            topic = topic_of(_QUOTED.search(prompt).group(1)) or "none of them"
            if request.schema is not None:
                return json.dumps({"label": topic}), "judge"
            return plain_label_reply(topic), "judge"
        if match := _REQUIREMENT.search(prompt):
            text = _QUOTED.search(prompt).group(1)
            answer = "yes" if match.group(2).lower() in text.lower() else "no"
            return (json.dumps({"answer": answer}) if request.schema is not None else f"{answer.capitalize()}."), "judge"
        if match := _ASKED.search(prompt):
            return self._ticket(prompt, request.seed, match.group(1))
        return super().compose(request, behaviour)

    def _ticket(self, prompt: str, seed: int | None, asked: str) -> tuple[str, str]:
        subtopic = re.search(r"It is about '(.+?)'", prompt).group(1)
        tone = re.search(r"Its tone is '(.+?)'", prompt).group(1)
        topic, kind = asked, "on_class"
        if fraction("off-class", prompt, seed) < self.off_class_rate:
            topic = LABELS[(LABELS.index(asked) + 1) % len(LABELS)]
            subtopic, kind = SUBTOPICS[topic][0], "off_class"
        # prose of its own, which does not quote the prompt's values: only the sentences above say what was asked
        filler = reply_text(f"a message between 20 and 30 words #{digest('filler', prompt, seed)}", seed=seed)
        return f"{TOPIC_SENTENCES[topic]} It is about {subtopic}. I am {tone}. {filler}", kind


def plain_label_reply(topic: str) -> str:
    """What a model without constrained decoding answers: the class in a sentence, in bold."""
    return f"Looking at the ticket, the class is **{topic}**."
