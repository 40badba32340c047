"""Turn free-text LLM replies into lists of items and yes/no answers.

Models answer "give me a list" in many shapes: numbered or bulleted lines, one comma-separated
line, a JSON array (often inside a ``` fence), a JSON object holding the array, and usually with a
"Here are 10 ..." preamble and a closing remark. Yes/no questions come back as "Yes.", "**No**",
"Answer: yes, because ...". The parsers here accept those shapes and return ``None`` (or an
empty list) when a reply carries nothing usable, so the caller can ask again; they never guess
from substrings ("eyes" is not "yes") and treat hedged answers ("it depends", "yes and no") as
unusable rather than picking a side.
"""

from __future__ import annotations

import json
import keyword
import re
from typing import Any

__all__ = [
    "clean_item",
    "dimension_name",
    "match_labels",
    "parse_class_dependence",
    "parse_list",
    "parse_yes_no",
]

_FENCE_RE = re.compile(r"```[A-Za-z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
_NUMBERED_RE = re.compile(r"^\s*(?:\(?\d{1,3}[.):]|\d{1,3}\s+-)\s+(.*\S)\s*$")
_BULLET_RE = re.compile(r"^\s*[-*•–·+]\s+(.*\S)\s*$")
_QUOTES = "\"'`“”‘’«»"
_TRAILING = ".,;:!?"
_ABBREVIATION_END_RE = re.compile(r"(?:\b[A-Za-z]\.){2,}[,;:!?]*\s*$")
_PREAMBLE_RE = re.compile(
    r"^(?:sure|certainly|of course|okay|ok|here (?:are|is)|below (?:are|is)|the following|these are)\b", re.IGNORECASE
)
_CLOSING_RE = re.compile(
    r"^(?:i hope|hope this|let me know|feel free|these (?:values|items|dimensions|options)|note\b|please note)",
    re.IGNORECASE,
)
_YES = frozenset({"yes", "yeah", "yep", "yup"})
_NO = frozenset({"no", "nope"})
_HEDGES = frozenset(
    ["depends", "depend", "maybe", "perhaps", "possibly", "partially", "partly", "somewhat", "unclear", "unsure", "uncertain"]
)
# Words that may precede the actual answer: "Answer: yes", "The answer is no", "My final answer: yes".
_LEAD_WORDS = frozenset({"answer", "final", "the", "is", "my", "a", "response", "short"})


def clean_item(text: str) -> str:
    """One list item without markdown emphasis, surrounding quotes, trailing punctuation or extra spaces."""
    text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text)  # **bold**, __bold__
    text = re.sub(r"(?<!\w)[*_](\S(?:.*?\S)?)[*_](?!\w)", r"\1", text)  # *italic*, _italic_
    text = " ".join(text.split())
    previous = None
    while previous != text:  # quotes and punctuation can nest: '"Paris".'
        previous = text
        abbreviation = _ABBREVIATION_END_RE.search(text)  # "Washington D.C." keeps its last dot
        text = text.strip().rstrip(_TRAILING.replace(".", "") if abbreviation else _TRAILING).strip()
        if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
            text = text[1:-1]
        text = text.strip("*_ ")
    return text


def _json_items(text: str) -> list[Any] | None:
    """The list a JSON reply holds: an array, or an object with exactly one list value.

    None when the reply holds no JSON; [] when it holds JSON of another shape (nothing usable).
    """
    candidates = [match.group(1) for match in _FENCE_RE.finditer(text)]
    stripped = text.strip()
    candidates.append(stripped)
    for opener, closer in ("[]", "{}"):
        start, end = stripped.find(opener), stripped.rfind(closer)
        if 0 <= start < end:
            candidates.append(stripped[start : end + 1])
    shapeless = False
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(data, dict):
            lists = [value for value in data.values() if isinstance(value, list)]
            data = lists[0] if len(lists) == 1 else None
        if isinstance(data, list):
            return data
        shapeless = shapeless or data is None
    return [] if shapeless else None


def _json_item_text(item: Any) -> str | None:
    if isinstance(item, str):
        return item
    if isinstance(item, (int, float)) and not isinstance(item, bool):
        return str(item)
    if isinstance(item, dict):  # [{"name": "x", "description": "..."}]: the first string field names it
        for key in ("name", "value", "title", "label", "item"):
            if isinstance(item.get(key), str):
                return item[key]
        strings = [value for value in item.values() if isinstance(value, str)]
        return strings[0] if strings else None
    return None


def _marked_items(lines: list[str]) -> list[str]:
    """Numbered items if there are any (bullets under them are sub-points), else bullets; top level only."""
    for pattern in (_NUMBERED_RE, _BULLET_RE):
        found = [(len(line) - len(line.lstrip()), m.group(1)) for line in lines if (m := pattern.match(line))]
        if found:
            top = min(indent for indent, _ in found)
            return [item for indent, item in found if indent == top]
    return []


def _line_items(text: str) -> list[str]:
    lines = [line for line in text.splitlines() if line.strip() and not line.strip().startswith("```")]
    marked = _marked_items(lines)
    if marked:  # preambles and closing remarks are the unmarked lines
        return marked
    body = [line.strip() for line in lines if not _CLOSING_RE.match(line.strip())]
    if len(body) > 1 and (_PREAMBLE_RE.match(body[0]) or body[0].endswith(":")):
        body = body[1:]
    if len(body) == 1 or any("," in line or ";" in line for line in body):
        line = max(body, key=lambda b: b.count(",") + b.count(";")) if body else ""
        if ":" in line and _PREAMBLE_RE.match(line):  # "Here are some styles: formal, casual"
            line = line.split(":", 1)[1]
        # A leading "and" is the Oxford comma's; "a, b and c" stays as written (items may contain "and").
        return [re.sub(r"^(?:and|or)\s+", "", part) for part in re.split(r"\s*[,;]\s*", line)]
    return body


def parse_list(text: str, *, limit: int | None = None) -> list[str]:
    """The items of a list reply, cleaned, de-duplicated (case-insensitive) and cut to ``limit``."""
    if not text or not text.strip():
        return []
    raw = _json_items(text)
    items = [s for s in (_json_item_text(item) for item in raw) if s] if raw is not None else _line_items(text)
    result: list[str] = []
    seen: set[str] = set()
    for item in items:
        cleaned = clean_item(item)
        key = cleaned.casefold()
        if not cleaned or key in seen or (_PREAMBLE_RE.match(cleaned) and cleaned.endswith(":")):
            continue
        seen.add(key)
        result.append(cleaned)
        if limit is not None and len(result) >= limit:
            break
    return result


def _words(text: str) -> list[str]:
    text = re.sub(r"[*_`#>\"“”]", " ", text).lower()
    return re.findall(r"[a-z]+", text)


def parse_yes_no(text: str) -> bool | None:
    """True for a yes, False for a no, None when the reply does not commit to either."""
    words = _words(text or "")
    start = 0
    while start < len(words) and words[start] in _LEAD_WORDS:
        start += 1
    words = words[start:]
    if not words:
        return None
    first = words[0]
    if first in _YES or first in _NO:
        # "Yes and no", "no or yes": both at once is no answer.
        if len(words) >= 3 and words[1] in ("and", "or") and (words[2] in _YES or words[2] in _NO):
            return None
        return first in _YES
    if any(word in _HEDGES for word in words):
        return None
    said_yes = any(word in _YES for word in words)
    said_no = any(word in _NO for word in words)
    if said_yes == said_no:
        return None
    return said_yes


_INDEPENDENT_RE = re.compile(
    r"\b(?:class[- ]independent|independent of the class|not class[- ]dependent|does not depend|doesn'?t depend"
    r"|same values? (?:fits?|for|across) (?:every|all|each))\b",
    re.IGNORECASE,
)
_DEPENDENT_RE = re.compile(
    r"\b(?:class[- ]dependent|class[- ]specific|depends on the class|depend on the class|varies by class"
    r"|differ(?:s)? (?:by|between|across) class(?:es)?)\b",
    re.IGNORECASE,
)


def parse_class_dependence(text: str) -> bool | None:
    """Whether an answer says a dimension is class-dependent (True), class-independent (False), or neither."""
    answer = parse_yes_no(text)
    if answer is not None:
        return answer
    independent = bool(_INDEPENDENT_RE.search(text or ""))
    dependent = bool(_DEPENDENT_RE.search(_INDEPENDENT_RE.sub(" ", text or "")))
    if independent == dependent:
        return None
    return dependent


def dimension_name(item: str, *, max_words: int = 4) -> str | None:
    """A dimension item ("**Writing style**: formal or casual") as an identifier ("writing_style")."""
    head = re.split(r"\s*(?::|\(|\s[-–—]\s)", clean_item(item), maxsplit=1)[0]
    words = re.findall(r"[A-Za-z0-9]+", head)
    if not words or len(words) > max_words:
        return None
    name = "_".join(word.lower() for word in words)
    # A template variable named "for" or "none" would not render.
    if not name[0].isalpha() or keyword.iskeyword(name) or name in ("true", "false", "none"):
        return None
    return name


def _strict(text: str) -> str:
    return re.sub(r"[\s_\-]+", " ", text).strip().casefold()


def _loose(text: str) -> str:  # "Sci/Tech" -> "sci tech"
    return re.sub(r"[^0-9a-z]+", " ", text.casefold()).strip()


def match_labels(items: list[str], label_texts: dict[str, str]) -> tuple[list[str], list[str]]:
    """(the labels the items name, in order, once each; the items that name no label).

    An item names a label when it equals the label's name or text, ignoring case, spaces, "_" and
    "-"; or, failing that, ignoring all punctuation ("Sci/Tech") where that leaves no two labels
    alike ("c++" and "c#"). "Business (finance news)" and "Business: ..." name "business".
    Nothing is ever invented: an item matching no label is returned as such.
    """
    strict = {_strict(key): name for name, text in label_texts.items() for key in (name, text)}
    loose: dict[str, set[str]] = {}
    for name, text in label_texts.items():
        for key in (name, text):
            loose.setdefault(_loose(key), set()).add(name)

    def lookup(text: str) -> str | None:
        names = loose.get(_loose(text), set())
        return strict.get(_strict(text)) or (next(iter(names)) if len(names) == 1 else None)

    found: list[str] = []
    unmatched: list[str] = []
    for item in items:
        head = re.split(r"\s*(?::|\(|\s[-–—]\s)", item, maxsplit=1)[0]
        label = lookup(item) or lookup(head)
        if label is None:
            unmatched.append(item)
        elif label not in found:
            found.append(label)
    return found, unmatched
