"""The counts a build keeps about itself, for the progress bar and the dataset card."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["BuildStats", "ClassStats"]

_JUDGE_COUNTS = ("judge_sent", "judge_reused", "judge_prompt_tokens", "judge_completion_tokens", "label_flags")


@dataclass
class ClassStats:
    kept: int = 0
    attempts: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> count


@dataclass
class BuildStats:
    """Everything counted during one build (merged across ``num_proc`` workers).

    ``sent`` counts paid replies received from the backend in this run; ``reused`` counts replies
    taken from the journal instead of being sent again. ``dropped`` counts rows not kept, by reason
    (``refusal``, ``empty``, ``duplicate``, ``cross_class_duplicate``, ``label_mismatch``, ``label_unchecked``).
    ``cross_class_flags`` counts kept rows that nearly duplicate a row of another class (likely label noise).

    ``judge_*`` count the LLM judge's requests apart from generation's (``prompt_tokens`` and the rest are
    generation's); ``label_flags`` counts kept rows whose judged label differs (``on_mismatch="flag"``);
    ``adherence`` counts the judge's yes/no/unclear answers per dimension; ``judge_response_format`` is how
    its answers were asked for (``json_schema``, or ``plain`` when the endpoint refused it).
    """

    sent: int = 0
    reused: int = 0
    kept: int = 0
    retries: Counter = field(default_factory=Counter)  # cause -> count
    failures: Counter = field(default_factory=Counter)  # cause -> requests given up on
    dropped: Counter = field(default_factory=Counter)
    cross_class_flags: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    wall_time_s: float = 0.0
    per_class: dict[str, ClassStats] = field(default_factory=dict)
    dedup_examples: list[dict[str, Any]] = field(default_factory=list)  # {"kept", "dropped", "similarity", "label"}
    dedup_removed_by_value: dict[str, Counter] = field(default_factory=dict)  # dimension -> value -> count
    judge_sent: int = 0
    judge_reused: int = 0
    judge_prompt_tokens: int = 0
    judge_completion_tokens: int = 0
    judge_cost: float = 0.0
    judge_response_format: str | None = None
    label_flags: int = 0
    adherence: dict[str, Counter] = field(default_factory=dict)  # dimension -> yes/no/unclear -> count

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def judge_tokens(self) -> int:
        return self.judge_prompt_tokens + self.judge_completion_tokens

    def for_class(self, label: str) -> ClassStats:
        if label not in self.per_class:
            self.per_class[label] = ClassStats()
        return self.per_class[label]

    def count_decision(self, label: str, *, dropped: str | None = None) -> None:
        """A sample of class ``label`` was kept, or dropped for reason ``dropped``."""
        class_stats = self.for_class(label)
        class_stats.attempts += 1
        if dropped is None:
            self.kept += 1
            class_stats.kept += 1
        else:
            self.dropped[dropped] += 1
            class_stats.dropped[dropped] += 1

    def merge(self, other: BuildStats) -> BuildStats:
        """Add ``other`` into this record (workers of one build cover disjoint classes)."""
        for name in ("sent", "reused", "kept", "cross_class_flags", "prompt_tokens", "completion_tokens", *_JUDGE_COUNTS):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.cost += other.cost
        self.judge_cost += other.judge_cost
        self.judge_response_format = self.judge_response_format or other.judge_response_format
        self.wall_time_s = max(self.wall_time_s, other.wall_time_s)
        self.retries.update(other.retries)
        self.failures.update(other.failures)
        self.dropped.update(other.dropped)
        for label, stats in other.per_class.items():
            mine = self.for_class(label)
            mine.kept += stats.kept
            mine.attempts += stats.attempts
            mine.dropped.update(stats.dropped)
        self.dedup_examples = (self.dedup_examples + other.dedup_examples)[:10]
        for dimension, counts in other.dedup_removed_by_value.items():
            self.dedup_removed_by_value.setdefault(dimension, Counter()).update(counts)
        for dimension, counts in other.adherence.items():
            self.adherence.setdefault(dimension, Counter()).update(counts)
        return self

    @classmethod
    def merged(cls, records: list[dict[str, Any]]) -> BuildStats | None:
        """One record from the per-worker records of a run (None when there are none)."""
        if not records:
            return None
        total = cls()
        for record in records:
            total.merge(cls.from_dict(record))
        return total

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it rebuilds a Counter from (key, count) pairs, counting the pairs.
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("retries", "failures", "dropped"):
            data[name] = dict(data[name])
        data["per_class"] = {
            label: {"kept": s.kept, "attempts": s.attempts, "dropped": dict(s.dropped)} for label, s in self.per_class.items()
        }
        data["dedup_removed_by_value"] = {dim: dict(c) for dim, c in self.dedup_removed_by_value.items()}
        data["dedup_examples"] = list(self.dedup_examples)
        data["adherence"] = {dim: dict(c) for dim, c in self.adherence.items()}
        data["total_tokens"] = self.total_tokens
        data["judge_tokens"] = self.judge_tokens
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildStats:
        data = dict(data)
        data.pop("total_tokens", None)
        data.pop("judge_tokens", None)
        per_class = {
            label: ClassStats(kept=s["kept"], attempts=s["attempts"], dropped=Counter(s.get("dropped", {})))
            for label, s in data.pop("per_class", {}).items()
        }
        counters: dict[str, Any] = {name: Counter(data.pop(name, {})) for name in ("retries", "failures", "dropped")}
        removed = {dim: Counter(values) for dim, values in data.pop("dedup_removed_by_value", {}).items()}
        adherence = {dim: Counter(answers) for dim, answers in data.pop("adherence", {}).items()}
        return cls(**data, **counters, per_class=per_class, dedup_removed_by_value=removed, adherence=adherence)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> BuildStats:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
