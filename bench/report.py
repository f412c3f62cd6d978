"""The run as Markdown (BENCHMARKS.md) and as numbers (results.json).

The header says what ran where; every section renders itself (its module's `render`)
under a numbered heading, and adds its numbers under its name.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .plan import Plan
from .sections import Context, Section


@dataclass(frozen=True, slots=True, kw_only=True)
class RunInfo:
    command: str
    date: datetime
    load: tuple[float, float]
    """The machine's 1-minute load average when the run started and ended."""
    elapsed_s: float = 0.0


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}, "
        f"Python {sys.version.split()[0]}"
    )


def header(info: RunInfo, plan: Plan) -> list[str]:
    b = plan.backend
    return [
        "# Benchmarks",
        "",
        f"- Date: {info.date:%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine()}",
        f"- Command: `{info.command}`"
        + (" (quick smoke run: numbers are not meaningful)" if plan.quick else ""),
        f"- Scripted backend: time to first token {b.ttft * 1000:.0f} ms, "
        f"{b.token_delay * 1000:.0f} ms between tokens (one word per SSE chunk), "
        f"tool time {b.tool_seconds * 1000:.0f} ms; {plan.reps} turns per variant, "
        "variants interleaved turn by turn, order rotated each repetition",
        f"- Wall time of the run: {info.elapsed_s:.0f} s; load average (1 min) at its start / "
        f"end: {info.load[0]:.1f} / {info.load[1]:.1f} (other work on the machine slows every "
        "variant: compare variants within one run)",
        "",
        "The LLM server (`testing/servers/openai_server.py`) runs in a child process "
        "(`bench/server_proc.py`), so it shares neither the event loop nor the GIL with "
        "the code measured. Its timestamps and ours are `time.perf_counter()`, on Linux "
        "CLOCK_MONOTONIC, one clock across processes.",
        "",
    ]


def render(info: RunInfo, sections: Sequence[tuple[int, Section]], ctx: Context) -> str:
    """The report: the header, then each section that ran under its registry number."""
    out = header(info, ctx.plan)
    for number, section in sections:
        out += [f"## {number}. {section.title}", ""]
        out += section.render(ctx.results[section.name], ctx)
    return "\n".join(out)


def write_results(
    path: Path, info: RunInfo, sections: Sequence[tuple[int, Section]], ctx: Context
) -> None:
    """results.json: `date`, `machine`, `command`, `quick`, then each section's numbers."""
    data: dict[str, Any] = {
        "date": f"{info.date:%Y-%m-%dT%H:%M:%SZ}",
        "machine": machine(),
        "command": info.command,
        "quick": ctx.plan.quick,
        "wall_s": round(info.elapsed_s, 1),
        "load_avg_1min": list(info.load),
    }
    for _, section in sections:
        data[section.name] = section.numbers(ctx.results[section.name])
    path.write_text(json.dumps(_finite(data), indent=2) + "\n", encoding="utf-8")


def _finite(value: Any) -> Any:
    """NaN (a quantile of no samples) as null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
