"""An LLM judge: which of a recipe's classes a text belongs to, and whether it follows one requirement.

A question is one chat request whose journal key is a fingerprint of the judge (its backend and
model), the question (the text, the label set, the requirement) and the judge's fixed sampling
parameters, built by the same ``JournaledClient`` as generation keys: a rerun finds every answer
already paid for and asks nothing.

Where the server supports it the answer is constrained with ``response_format``: a JSON schema whose
enum is the label names (or yes/no), in OpenAI's form, which huggingface_hub rewrites for where the
request goes (TGI's grammar ``{"type": "json_object", "value": schema}`` for an endpoint URL, the
form each Inference Provider reads for providers). A server that refuses it (TGI started without
grammar support answers 422 "grammar is not supported"; vLLM and others 400) is not a failure: the
same question goes out again as a plain question, and so does every later one. Until the endpoint
has taken or refused a constrained question, one question at a time asks with it, so the endpoint
refuses once per run, not once per row. The response format is not part of the key: a constrained
and a plain answer to one question are the same paid answer, and both are parsed (JSON first, then
the class names the text mentions).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from attrprompt_builder.client.backends import BackendSpec
from attrprompt_builder.client.journaled import JournaledClient
from attrprompt_builder.client.types import ChatReply, ChatRequest, SamplingParams
from attrprompt_builder.errors import ResponseFormatRejectedError
from attrprompt_builder.recipe.model import Recipe

__all__ = [
    "ADHERENCE_SAMPLE",
    "JUDGE_SEED",
    "Judge",
    "JudgeSpec",
    "LABEL_CHECK_COLUMN",
    "MEASURED_WITHOUT_JUDGE",
    "adherence_question",
    "label_question",
    "parse_labels",
    "parse_yes_no",
    "response_format",
]

#: The column of the label(s) a label check gives each row's text; a row is flagged when they differ from its label.
LABEL_CHECK_COLUMN = "label_check"
#: Kept rows asked about their other dimensions when a judge is configured and ``adherence_sample`` is not given.
ADHERENCE_SAMPLE = 200
#: Dimensions the judge is not asked about: ``verify`` measures them from the text itself (word counts, place names).
MEASURED_WITHOUT_JUDGE = ("length", "location")
JUDGE_SEED = 0
# Greedy: a judge's answer should not depend on the dice. Room for a JSON object or a short sentence
# (multi-label: a few class names more; a list of every class of a large recipe is no real answer).
_LABEL_TOKENS = 48
_TOKENS_PER_EXTRA_LABEL = 12
_MAX_LABEL_TOKENS = 256
_YES_NO_TOKENS = 16

SendFn = Callable[[ChatRequest, str, int], Awaitable["ChatReply | None"]]


def response_format(schema: dict[str, Any]) -> dict[str, Any]:
    """``response_format`` asking for a reply that matches ``schema`` (OpenAI's form; see the module docstring)."""
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}


@dataclass(frozen=True)
class JudgeSpec:
    """What the judge does in a build (picklable, like the rest of ``RunSettings``).

    ``backend`` None: the build's own backend judges. ``label_check``: every candidate row is judged;
    ``on_mismatch`` "drop" replaces a row whose judged label differs, "flag" keeps it. ``adherence_sample``
    kept rows (spread over the classes) are asked, for each of their other dimensions, whether they follow it.
    """

    backend: BackendSpec | None = None
    label_check: bool = False
    on_mismatch: str = "drop"
    adherence_sample: int = 0

    @classmethod
    def resolve(
        cls,
        *,
        label_check: str | None,
        on_mismatch: str = "drop",
        adherence_sample: int | None = None,
        backend: BackendSpec | None = None,
        named: bool = False,
    ) -> JudgeSpec:
        """The judge the options describe: configured by ``label_check="judge"`` or by naming one (``named``);
        ``adherence_sample`` None is ``ADHERENCE_SAMPLE`` when configured, else 0."""
        configured = label_check == "judge" or named
        sample = adherence_sample if adherence_sample is not None else (ADHERENCE_SAMPLE if configured else 0)
        return cls(backend=backend, label_check=label_check == "judge", on_mismatch=on_mismatch, adherence_sample=sample)

    @property
    def enabled(self) -> bool:
        return self.label_check or self.adherence_sample > 0

    @staticmethod
    def dimensions(recipe: Recipe, *, prompting: str) -> list[str]:
        """The dimensions adherence questions ask about (a SimPrompt row drew none)."""
        if prompting != "attributed":
            return []
        return [name for name in recipe.attribute_names if name not in MEASURED_WITHOUT_JUDGE]


# -- questions -----------------------------------------------------------------------------------
def _quoted(text: str) -> str:
    return '"""\n' + text.replace('"""', '"\u200b""') + '\n"""'


def label_question(recipe: Recipe, text: str) -> tuple[tuple[dict[str, str], ...], dict[str, Any], SamplingParams]:
    """The messages, JSON schema and sampling parameters of "which class is this text?"."""
    names = recipe.label_names
    classes = "\n".join(f"- {label.name}" + (f" ({label.text})" if label.text != label.name else "") for label in recipe.labels)
    if recipe.multi_label:
        ask = f"Which of these classes apply to the {recipe.domain} below? One or more."
        form = '{"labels": ["<class name>", ...]}'
        item = {"type": "string", "enum": names}
        schema = {"type": "array", "items": item, "minItems": 1, "uniqueItems": True}
        field_name, tokens = "labels", min(_MAX_LABEL_TOKENS, _LABEL_TOKENS + _TOKENS_PER_EXTRA_LABEL * len(names))
    else:
        ask = f"Which one of these classes does the {recipe.domain} below belong to?"
        form = '{"label": "<class name>"}'
        schema = {"type": "string", "enum": names}
        field_name, tokens = "label", _LABEL_TOKENS
    content = f"{ask}\n{classes}\nAnswer with the class name only, as JSON: {form}\n\n{recipe.domain}:\n{_quoted(text)}"
    full = {"type": "object", "properties": {field_name: schema}, "required": [field_name], "additionalProperties": False}
    return ({"role": "user", "content": content},), full, SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=tokens)


def adherence_question(
    recipe: Recipe, text: str, *, dimension: str, value: str
) -> tuple[tuple[dict[str, str], ...], dict[str, Any], SamplingParams]:
    """The messages, JSON schema and sampling parameters of "does this text follow this requirement?"."""
    content = (
        f"Does the {recipe.domain} below follow this requirement: its {dimension} is '{value}'?\n"
        'Answer yes or no, as JSON: {"answer": "yes"} or {"answer": "no"}\n\n'
        f"{recipe.domain}:\n{_quoted(text)}"
    )
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    return (
        ({"role": "user", "content": content},),
        schema,
        SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=_YES_NO_TOKENS),
    )


# -- answers -------------------------------------------------------------------------------------
def _json_field(answer: str, name: str) -> Any:
    """``name`` of the first JSON object in ``answer`` (a constrained reply is exactly one), else None."""
    for match in re.finditer(r"\{[^{}]*\}", answer):
        try:
            parsed = json.loads(match.group())
        except ValueError:
            continue
        if isinstance(parsed, dict) and name in parsed:
            return parsed[name]
    return None


def _spellings(labels: Sequence[tuple[str, str]]) -> list[tuple[re.Pattern[str], str]]:
    """Word-bounded patterns for each class's name and text (``sci_tech`` also as "sci tech"), longest first."""
    found: dict[str, str] = {}
    for name, text in labels:
        for spelling in (name, name.replace("_", " "), name.replace("_", "-"), text):
            found.setdefault(" ".join(spelling.lower().split()), name)
    ordered = sorted(found, key=len, reverse=True)
    return [(re.compile(r"(?<![\w-])" + re.escape(spelling) + r"(?![\w-])"), found[spelling]) for spelling in ordered]


def parse_labels(answer: str, labels: Sequence[tuple[str, str]], *, multi_label: bool) -> tuple[str, ...] | None:
    """The class names a judge's ``answer`` gives, in ``labels`` order; None when it gives none usable.

    ``labels`` are (name, text) pairs. A JSON answer is read by its field; anything else by the class
    names (or texts) it mentions: a single-label answer must mention exactly one class.
    """
    order = {name: position for position, (name, _) in enumerate(labels)}
    field_value = _json_field(answer, "labels" if multi_label else "label")
    if field_value is not None:
        given = field_value if isinstance(field_value, list) else [field_value]
        patterns = _spellings(labels)
        named = set()
        for item in given:
            spelled = " ".join(str(item).lower().split())
            named |= {name for pattern, name in patterns if pattern.fullmatch(spelled)}
    else:
        text = " ".join(answer.lower().replace("*", " ").split())
        named = set()
        for pattern, name in _spellings(labels):
            if pattern.search(text):
                named.add(name)
                text = pattern.sub(" ", text)  # "sci tech" must not also count as a mention of "tech"
    if not named or (not multi_label and len(named) != 1):
        return None
    return tuple(sorted(named, key=order.__getitem__))


def parse_yes_no(answer: str) -> bool | None:
    """True for yes, False for no, None when the answer says neither (or both)."""
    given = _json_field(answer, "answer")
    text = str(given if given is not None else answer).lower()
    words = set(re.findall(r"[a-z]+", text))
    first = re.match(r"\W*([a-z]+)", text)
    if first is not None and first.group(1) in ("yes", "no"):
        return first.group(1) == "yes"
    if ("yes" in words) != ("no" in words):
        return "yes" in words
    return None


# -- asking ----------------------------------------------------------------------------------------
class _FormSupport:
    """Whether the endpoint takes ``response_format``, found by the first questions and kept for the run."""

    def __init__(self) -> None:
        self.constrained: bool | None = None  # None: not known yet
        self.lock = asyncio.Lock()
        self.refusal: str | None = None  # what the endpoint said when it refused


class Judge:
    """Asks the judge questions through ``client`` (its journal keys) and ``send`` (budget, lanes, sending).

    ``send(request, label, index)`` sends a request ``client.reuse`` has claimed and returns the
    journaled reply (None when every attempt failed); it raises ``ResponseFormatRejectedError`` when
    the endpoint refuses the request's response format.
    """

    def __init__(self, client: JournaledClient, recipe: Recipe, *, send: SendFn) -> None:
        self.client = client
        self.recipe = recipe
        self._send = send
        self._labels = [(label.name, label.text) for label in recipe.labels]
        self.support = _FormSupport()

    async def labels(self, text: str, *, label: str, index: int) -> tuple[str, ...] | None:
        """The classes the judge gives ``text`` (``label``/``index``: the sample, for the journal); None: no usable answer."""
        messages, schema, params = label_question(self.recipe, text)
        reply = await self._ask(messages, schema, params, label=label, index=index)
        return None if reply is None else parse_labels(reply.text, self._labels, multi_label=self.recipe.multi_label)

    async def adheres(self, text: str, *, dimension: str, value: str, label: str, index: int) -> bool | None:
        """Whether the judge says ``text`` follows "its ``dimension`` is ``value``"; None: no usable answer."""
        messages, schema, params = adherence_question(self.recipe, text, dimension=dimension, value=value)
        reply = await self._ask(messages, schema, params, label=label, index=index)
        return None if reply is None else parse_yes_no(reply.text)

    async def _ask(
        self, messages: tuple[dict[str, str], ...], schema: dict[str, Any], params: SamplingParams, *, label: str, index: int
    ) -> ChatReply | None:
        request = self.client.request(messages, params=params, seed=JUDGE_SEED)
        constrained = replace(request, response_format=response_format(schema))
        tag, support = f"judge:{label}", self.support
        while True:
            reply = await self.client.reuse(request)  # claims the key when it is not in the journal yet
            if reply is not None or self.client.stopping.is_set():
                return reply
            if support.constrained is False:
                return await self._send(request, tag, index)
            if support.constrained:
                try:
                    return await self._send(constrained, tag, index)
                except ResponseFormatRejectedError as err:  # a replica unlike the one that took it
                    self._refused(err)
                    continue
            self.client.release(request)  # claimed again after the wait, by whoever still needs it
            async with support.lock:  # one question at a time until the endpoint took or refused the format
                if support.constrained is not None:
                    continue
                reply = await self.client.reuse(request)
                if reply is not None or self.client.stopping.is_set():
                    return reply
                try:
                    reply = await self._send(constrained, tag, index)
                except ResponseFormatRejectedError as err:
                    self._refused(err)
                    continue
                support.constrained = True if reply is not None else None
                return reply

    def _refused(self, err: ResponseFormatRejectedError) -> None:
        self.support.constrained = False
        self.support.refusal = str(err)
