"""Messages written for Python callers (``price_in=``, ``embedder='ngram'``), in the words of the running command line.

The API's errors name options as a caller writes them; the CLI shows the same line with the flags a user
types, without a second set of messages to keep in step.
"""

from __future__ import annotations

import re
import shlex

__all__ = ["in_cli_words"]

# ``model=``, ``embedder='ngram'``, ``overwrite=True``: a keyword as a Python caller writes it (a word of its
# own, so "http://h/?a=b" inside a quoted value is left alone).
_KEYWORD = re.compile(r"(`?)(?<![^\s(`])([a-z][a-z0-9_]*)=(?:'([^']*)'|\"([^\"]*)\"|(True)\b)?\1")
# ``price_in``: an option's name with an underscore, which no English word has.
_OPTION_NAME = re.compile(r"(?<![^\s(`])([a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?=[\s,;:.)`]|$)")


def in_cli_words(message: str, flag_words: dict[str, str]) -> str:
    """A message written for Python callers, in the words of the command line that is running.

    ``max_attempts: got 0; ...`` becomes ``--max-attempts: got 0; ...`` (when the subject is only
    option names), ``pass embedder='ngram'`` becomes ``pass --embedder ngram``, and ``price_in``
    becomes ``--price-in``. Names that are not flags of the running command stay as they are.
    """
    subject, colon, rest = message.partition(": ")
    names = subject.split(" + ")
    if colon and all(name in flag_words for name in names):
        head = " + ".join(flag_words[name] for name in names) + colon
    else:
        head, rest = "", message

    def keyword(match: re.Match[str]) -> str:
        tick, name, single, double, _true = match.groups()
        flag = flag_words.get(name)
        if flag is None:
            return match.group(0)
        value = single if single is not None else double
        return f"{tick}{flag}{'' if value is None else ' ' + shlex.quote(value)}{tick}"

    rest = _KEYWORD.sub(keyword, rest)
    rest = _OPTION_NAME.sub(lambda match: flag_words.get(match.group(1), match.group(1)), rest)
    # "pass `token=` (CLI: --token)" now names the flag twice.
    rest = re.sub(r" \(CLI: (--[\w-]+)\)", lambda m: "" if m.group(1) in rest[: m.start()] else m.group(0), rest)
    return head + rest
