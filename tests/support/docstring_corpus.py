"""A real, human-written, labelled corpus that every machine running the tests has: package docstrings.

Each text is a prose paragraph (30-150 words, no code) of a docstring of an installed package; its
label is the package. The packages are ones the project's own install brings in (transformers,
torch's sympy and networkx, datasets' pandas, matplotlib for plots, scikit-learn for the label
check, mypy for lint, pip in every virtualenv), so the corpus exists wherever the tests run.
Their subjects differ (symbolic maths, graphs, data frames, plotting, estimators, type checking,
packaging, language models), as the classes of a topic-classification dataset do.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

__all__ = ["PACKAGES", "docstring_corpus", "paragraphs_of"]

PACKAGES = ("sympy", "networkx", "pandas", "matplotlib", "sklearn", "mypy", "pip", "transformers")

_CODE_CHARS = set("()[]{}=<>_`*#|\\/@$%^~")
_PLAIN_WORD = re.compile(r"[\"'(]?[A-Za-z][a-z'-]*[.,;:!?\"')]*")
_BULLET = re.compile(r"^([-*+#>|]|\d+[.)]|\.\.|:)\s*")


def paragraphs_of(text: str) -> list[str]:
    """Prose paragraphs of 30-150 words: no code, lists, links or markup-heavy lines (bench/dedup_threshold.py's corpus too)."""
    out = []
    for block in re.split(r"\n\s*\n", text):
        lines = block.splitlines()
        if any(line.startswith(("    ", "\t", ">>>", "...", "$ ")) for line in lines):
            continue
        paragraph = " ".join(line.strip() for line in lines).strip()
        words = paragraph.split()
        if not 30 <= len(words) <= 150 or _BULLET.match(paragraph) or "http" in paragraph or "::" in paragraph:
            continue
        if sum(ch in _CODE_CHARS for ch in paragraph) > 0.01 * len(paragraph):
            continue
        if sum(bool(_PLAIN_WORD.fullmatch(word)) for word in words) < 0.85 * len(words):
            continue
        out.append(paragraph)
    return out


def _package_paragraphs(package: str, limit: int) -> list[str]:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {package!r} is not installed; install the project with .[test,local,lint]")
    root = Path(next(iter(spec.submodule_search_locations)))
    found: list[str] = []
    seen: set[str] = set()
    for path in sorted(root.glob("**/*.py")):
        if {"tests", "test", "testing", "_vendor"} & set(path.relative_to(root).parts):
            continue
        source = path.read_text(encoding="utf-8", errors="replace")
        if '"""' not in source and "'''" not in source:
            continue
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                for paragraph in paragraphs_of(ast.get_docstring(node) or ""):
                    key = " ".join(paragraph.lower().split())
                    if key not in seen:  # one docstring inherited or copied in two places counts once
                        seen.add(key)
                        found.append(paragraph)
                        if len(found) >= limit:
                            return found
    return found


def docstring_corpus(per_class: int, packages: tuple[str, ...] = PACKAGES) -> list[tuple[str, str]]:
    """``(text, package)`` pairs: the first ``per_class`` paragraphs of each package, in file order."""
    return [(text, package) for package in packages for text in _package_paragraphs(package, per_class)]
