"""What a section is, what it runs with, and the Markdown it writes.

A section is a module with `NAME` (what `python -m bench NAME` selects it by, and its key
in bench/results.json), `TITLE` (its heading in BENCHMARKS.md) and three functions:
`run(ctx)` measures and returns a result (a coroutine function runs in an event loop of its
own); `render(result)` is that result as Markdown blocks (paragraphs and tables, printed
apart); `numbers(result)` is its entry in results.json: summaries, not raw samples. A
result carries whatever its render needs, so the three can be called apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from .common import Summary
from .plan import Plan
from .server_proc import RemoteLLMServer

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """One run: its plan, the shared scripted LLM server, earlier sections' results."""

    plan: Plan
    server: RemoteLLMServer
    results: dict[str, Any] = field(default_factory=dict)
    """Results of the sections that ran before this one, by section name."""

    def sized(self, *, full: T, quick: T) -> T:
        """A section's own size: `quick` in a `--quick` run, else `full`."""
        return quick if self.plan.quick else full


class Section(Protocol):
    NAME: str
    TITLE: str

    def run(self, ctx: Context) -> Any: ...
    def render(self, result: Any) -> list[str]: ...
    def numbers(self, result: Any) -> Mapping[str, object]: ...


def summary(values: Sequence[float]) -> dict[str, float | int]:
    """A sample's size and p50 / p95, rounded for results.json."""
    s = Summary.of(values)
    return {"n": s.n, "p50": round(s.p50, 3), "p95": round(s.p95, 3)}


def p50(values: Sequence[float]) -> float:
    return Summary.of(values).p50


def p50_p95(values: Sequence[float], spec: str = ".1f") -> list[str]:
    """Two table cells: the sample's p50 and p95, formatted by `spec`."""
    s = Summary.of(values)
    return [format(s.p50, spec), format(s.p95, spec)]


def table(header: str, rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; `header` is its column names joined by " | "."""
    lines = ["| " + header + " |", "|" + "---|" * len(header.split(" | "))]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"
