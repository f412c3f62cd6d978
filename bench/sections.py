"""What a section is, what it runs with (the plan), what the sections share besides (the backend
under test, child processes, memory, a quiet logger), and the statistics and Markdown they write."""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import psutil

from agent.ops.logging import configure_logging
from testing.engine import make_engine

from .server_proc import RemoteLLMServer

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
MB = 2**20
REPLY = "Sure, it is a quarter past ten in the morning here, and the sun is out."

# the tests' engine with room for a loaded machine: a slow answer is measured, not failed
bench_engine = functools.partial(make_engine, timeout=30.0, tool_timeout=10.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class VoicePlan:
    turns: int  # spoken turns measured in the voice section (0: skip it)
    warmup: int
    ttft: float
    token_delay: float
    side_by_side: int = 16  # utterances said to each pipeline (the paused questions, cycled)
    idle_worker: bool = True  # also measure an idle `voice-agent start` (about 10 s)
    pause: float = 0.5
    stt: str = "moonshine"  # or `whisper` (the tiny.en server), for all of the voice section


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What the CLI changes and more than one section reads (a section's own: `ctx.sized`)."""

    quick: bool
    ttft: float  # the scripted model's time to first token, between tokens, and tool time
    token_delay: float
    tool_seconds: float
    reps: int  # turns per variant in the no-tool and tool sections
    warmup: int
    voice: VoicePlan
    capacity: dict[str, Any] = field(default_factory=dict)  # the CLI's for the `CapacityPlan`


FULL = Plan(
    quick=False,
    ttft=0.15,
    token_delay=0.02,
    tool_seconds=0.05,
    reps=40,
    warmup=3,
    # the scripted LLM as in sections 1-2; 12 spoken turns after one for warm-up
    voice=VoicePlan(turns=12, warmup=1, ttft=0.15, token_delay=0.02),
)
QUICK = Plan(
    quick=True,
    ttft=0.02,
    token_delay=0.001,
    tool_seconds=0.005,
    reps=2,
    warmup=1,
    # no voice section: one spoken turn adds about 25 s (`--voice-turns 1` runs one)
    voice=VoicePlan(
        turns=0, warmup=0, ttft=0.02, token_delay=0.001, side_by_side=2, idle_worker=False
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """One run: its plan, the shared scripted LLM server, earlier sections' results."""

    plan: Plan
    server: RemoteLLMServer
    results: dict[str, Any] = field(default_factory=dict)  # of the sections run before, by name

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
    return float(np.percentile(values, q)) if len(values) else float("nan")


def summary(values: Sequence[float], *, digits: int = 3, n: bool = True) -> dict[str, float]:
    """A sample's size (unless `n` is false) and p50 / p95, rounded for results.json."""
    quantiles = {"p50": round(pct(values, 50), digits), "p95": round(pct(values, 95), digits)}
    return {"n": len(values), **quantiles} if n else quantiles


p50 = functools.partial(pct, q=50)


def cells(sample: Sequence[float] | Mapping[str, float], spec: str = ".1f") -> list[str]:
    """Two table cells: the p50 and p95 of a sample, or of its `summary` (n/a for none)."""
    s = summary(sample, digits=6) if isinstance(sample, Sequence) else sample
    return [format(s["p50"], spec), format(s["p95"], spec)] if s.get("n", 1) else ["n/a", "n/a"]


def table(header: str, rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; `header` is its column names joined by " | "."""
    lines = ["| " + header + " |", "|" + "---|" * len(header.split(" | "))]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def goal(*goals: tuple[str, str, bool], missed: str = "**missed**") -> str:
    """One sentence for each (goal, what was measured, whether it was met)."""
    said = "; ".join(f"{g}: {got}, {'met' if ok else missed}" for g, got, ok in goals)
    return f"Goal: {said}."


def machine() -> str:
    """Cores, CPU model, OS and Python: where the numbers were measured."""
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if "model name" in ln), model)
    return (
        f"{os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}, "
        f"Python {sys.version.split()[0]}"
    )


def child_env(*, drop: tuple[str, ...], **values: str) -> dict[str, str]:
    """This environment less the variables starting with `drop`, plus `values`; the
    checkout under test on the child's import path."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return kept | {"PYTHONPATH": str(ROOT), **values}


def run_module(module: str, *args: str, timeout: float) -> str:
    """`python -m MODULE ARGS...` from the repository root, in a fresh process (its own
    memory and GIL): its output; RuntimeError with the end of its stderr if it failed."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=child_env(drop=()),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"python -m {module} failed: {proc.stderr[-3000:]}")
    return proc.stdout


def rss_mb(pid: int | None = None) -> float:
    """A process's resident memory (this one's by default), in MiB."""
    return float(psutil.Process(pid).memory_info().rss) / MB


def pss_mb(pid: int) -> float:
    """A process's proportional set size: its shared pages split among their sharers."""
    return float(psutil.Process(pid).memory_full_info().pss) / MB


def quiet_logs() -> None:
    """Production logging (JSON, info), written to /dev/null: its cost is part of a turn."""
    devnull = open(os.devnull, "w")  # noqa: SIM115 - the logger writes to it for good
    with contextlib.redirect_stderr(devnull):
        configure_logging(level="info", fmt="json")
