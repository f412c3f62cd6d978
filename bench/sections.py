"""What a section is, what it runs with (the plan), and the statistics and Markdown it
writes."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from .server_proc import RemoteLLMServer

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backend:
    """What the scripted model does: its time to first token and token rate."""

    ttft: float
    token_delay: float
    tool_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class VoicePlan:
    turns: int  # spoken turns measured in the voice section (0: skip it)
    warmup: int
    ttft: float
    token_delay: float
    side_by_side: int = 16  # utterances said to each pipeline (the paused questions, cycled)
    idle_worker: bool = True  # also measure an idle `voice-agent start` (about 10 s)
    pause: float = 0.5
    stt: str = "moonshine"
    """`moonshine` (in the worker, the default) or `whisper` (the tiny.en server), for both
    pipelines of the side by side and for the voice section."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What the CLI changes and more than one section reads; a section's own sizes stay in
    its module (`ctx.sized`)."""

    quick: bool
    backend: Backend
    reps: int  # turns per variant in the no-tool and tool sections
    warmup: int
    voice: VoicePlan
    capacity: dict[str, Any] = field(default_factory=dict)
    """What the command line changed of the capacity section's `CapacityPlan`."""


FULL = Plan(
    quick=False,
    backend=Backend(ttft=0.15, token_delay=0.02, tool_seconds=0.05),
    reps=40,
    warmup=3,
    # the scripted LLM as in sections 1-2; 12 spoken turns after one for warm-up
    voice=VoicePlan(turns=12, warmup=1, ttft=0.15, token_delay=0.02),
)
QUICK = Plan(
    quick=True,
    backend=Backend(ttft=0.02, token_delay=0.001, tool_seconds=0.005),
    reps=2,
    warmup=1,
    # the voice section is skipped: even one spoken turn adds about 25 s (the Whisper
    # server, a session process and a real-time utterance); `--voice-turns 1` runs one
    voice=VoicePlan(
        turns=0, warmup=0, ttft=0.02, token_delay=0.001, side_by_side=2, idle_worker=False
    ),
)


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
    """A section: a module, or a `Part` of one (a module may hold two)."""

    NAME: str
    TITLE: str

    def run(self, ctx: Context) -> Any: ...
    def render(self, result: Any) -> list[str]: ...
    def numbers(self, result: Any) -> Mapping[str, object]: ...


@dataclass(slots=True)
class Part:
    NAME: str
    TITLE: str
    run: Callable[[Context], Any]
    render: Callable[[Any], list[str]]
    numbers: Callable[[Any], Mapping[str, object]]


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; nan when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo = math.floor(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: Sequence[float], *, digits: int = 3, n: bool = True) -> dict[str, float]:
    """A sample's size (unless `n` is false) and p50 / p95, rounded for results.json."""
    quantiles = {"p50": round(pct(values, 50), digits), "p95": round(pct(values, 95), digits)}
    return {"n": len(values), **quantiles} if n else quantiles


def p50(values: Sequence[float]) -> float:
    return pct(values, 50)


def p50_p95(values: Sequence[float], spec: str = ".1f") -> list[str]:
    """Two table cells: the sample's p50 and p95, formatted by `spec` (n/a for none)."""
    return cells(summary(values, digits=6), spec)


def cells(s: Mapping[str, float], spec: str = ".1f") -> list[str]:
    """Two table cells from a `summary`: its p50 and p95 (n/a for an empty sample)."""
    return [format(s["p50"], spec), format(s["p95"], spec)] if s.get("n", 1) else ["n/a", "n/a"]


def table(header: str, rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; `header` is its column names joined by " | "."""
    lines = ["| " + header + " |", "|" + "---|" * len(header.split(" | "))]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def verdict(ok: bool, missed: str = "**missed**") -> str:
    return "met" if ok else missed
