"""Section 4: many text sessions in one worker process.

Every level (1, 10, 50, 100 sessions) runs in a fresh Python process, so memory
measured for one level is not memory another level left behind, against one LLM
server in a process of its own. Each session is a livekit `AgentSession` in text
mode with our `Assistant`, as the worker hosts it, and says a few turns with a
random pause ("the user thinking") before each.

Run alone: `python -m bench.sessions --sessions 10 --base-url URL` prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

from livekit.agents import AgentSession

from agent.config.settings import DEFAULT_INSTRUCTIONS
from agent.voice.assistant import Assistant

from .common import FirstTextOutput, bench_engine, quiet_logging, rss_mb, run_module
from .first_text import TOOLS
from .sections import Context, p50_p95, summary, table
from .server_proc import RemoteLLMServer

NAME = "sessions"
TITLE = "Concurrent text sessions in one process"


@dataclass(frozen=True, slots=True)
class TurnTiming:
    tag: str
    started_at: float
    first_text_at: float


async def _session(
    sid: int,
    base_url: str,
    turns: int,
    think: float,
    rng: random.Random,
    all_started: asyncio.Barrier | None = None,
) -> tuple[AgentSession[None], list[TurnTiming]]:
    engine = bench_engine(base_url)
    session: AgentSession[None] = AgentSession(llm=engine.llm)
    out = FirstTextOutput()
    session.output.transcription = out
    await session.start(Assistant(engine=engine, instructions=DEFAULT_INSTRUCTIONS, tools=TOOLS))
    if all_started is not None:
        # users arrive over time in a real worker; a burst of start-ups is not a turn's cost
        await all_started.wait()
    timings: list[TurnTiming] = []
    for k in range(turns):
        await asyncio.sleep(rng.uniform(0, 2 * think))
        tag = f"session {sid} turn {k}"
        out.first_at = None
        started = time.perf_counter()
        await session.run(user_input=tag)
        if out.first_at is not None:
            timings.append(TurnTiming(tag, started, out.first_at))
    return session, timings


async def run_level(sessions: int, base_url: str, turns: int, think: float) -> dict[str, object]:
    quiet_logging()
    # one session first, closed again: imports, caches and the first connection are
    # paid before the baseline, so the delta is what sessions themselves hold
    warm, _ = await _session(-1, base_url, 1, 0.0, random.Random(0))
    await warm.aclose()
    gc.collect()
    baseline = rss_mb()
    barrier = asyncio.Barrier(sessions)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    results = await asyncio.gather(
        *(_session(i, base_url, turns, think, random.Random(i), barrier) for i in range(sessions))
    )
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    gc.collect()
    peak = rss_mb()  # every session still open, its history held
    for session, _ in results:
        await session.aclose()
    return {
        "sessions": sessions,
        "rss_baseline_mb": baseline,
        "rss_with_sessions_mb": peak,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "turns": [
            {"tag": t.tag, "started_at": t.started_at, "first_text_at": t.first_text_at}
            for _, timings in results
            for t in timings
        ],
    }


@dataclass(frozen=True, slots=True)
class LevelResult:
    sessions: int
    turns: int
    added_ms: list[float]
    first_text_ms: list[float]
    rss_per_session_mb: float
    rss_baseline_mb: float
    turns_per_second: float
    cpu_busy: float
    """Worker CPU seconds per wall second (1.0 = one core saturated)."""


def run(ctx: Context) -> list[LevelResult]:
    plan = ctx.plan
    return measure(ctx.server, plan.levels, min_turns=plan.min_turns, think=plan.think)


def measure(
    server: RemoteLLMServer, levels: list[int], *, min_turns: int, think: float
) -> list[LevelResult]:
    """`min_turns` turns per level at least (a lone session says them one after another)."""
    results: list[LevelResult] = []
    for n in levels:
        turns = max(3, -(-min_turns // n))
        server.reset()
        proc = run_module(
            "bench.sessions",
            f"--sessions={n}",
            f"--turns={turns}",
            f"--think={think}",
            f"--base-url={server.base_url}",
            timeout=300,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{n} sessions failed: {proc.stderr[-2000:]}")
        data = json.loads(proc.stdout)
        served = {r.last_user_text: r for r in server.requests()}
        added, first = [], []
        for t in data["turns"]:
            request = served.get(t["tag"])
            if request is None or request.ttft is None:
                continue
            out = t["first_text_at"] - t["started_at"]
            first.append(out * 1000)
            added.append((out - request.ttft) * 1000)
        results.append(
            LevelResult(
                sessions=n,
                turns=len(added),
                added_ms=added,
                first_text_ms=first,
                rss_per_session_mb=(data["rss_with_sessions_mb"] - data["rss_baseline_mb"]) / n,
                rss_baseline_mb=data["rss_baseline_mb"],
                turns_per_second=len(data["turns"]) / data["wall_seconds"],
                cpu_busy=data["cpu_seconds"] / data["wall_seconds"],
            )
        )
    return results


def render(levels: list[LevelResult]) -> list[str]:
    return [
        "Each level runs in a fresh process: livekit `AgentSession`s in text mode with our "
        "`Assistant`, all started before the first turn, each saying its turns after a "
        "random pause (uniform, mean given by `--think`). Added latency = time to first "
        "text out - the server's TTFT for that very request (matched by the user text). "
        "Memory = (RSS with every session open and its history held - RSS after one "
        "warm-up session) / sessions. CPU busy = worker CPU seconds per wall second "
        "(1.0 = one core); the server process shares the same 2 cores.",
        "",
        table(
            "sessions | turns | turns/s | worker CPU busy | added ms p50 | added ms p95 | "
            "first text ms p95 | RSS MB per session | RSS MB baseline",
            [
                [
                    r.sessions,
                    r.turns,
                    f"{r.turns_per_second:.1f}",
                    f"{r.cpu_busy:.2f}",
                    *p50_p95(r.added_ms),
                    p50_p95(r.first_text_ms)[1],
                    f"{r.rss_per_session_mb:.2f}",
                    f"{r.rss_baseline_mb:.1f}",
                ]
                for r in levels
            ],
        ),
        "",
    ]


def numbers(levels: list[LevelResult]) -> Mapping[str, object]:
    return {
        str(r.sessions): {
            "turns": r.turns,
            "turns_per_second": round(r.turns_per_second, 2),
            "cpu_busy": round(r.cpu_busy, 3),
            "added_ms": summary(r.added_ms),
            "first_text_ms": summary(r.first_text_ms),
            "rss_per_session_mb": round(r.rss_per_session_mb, 2),
            "rss_baseline_mb": round(r.rss_baseline_mb, 1),
        }
        for r in levels
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sessions")
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--think", type=float, default=0.5)
    parser.add_argument("--base-url", required=True)
    args = parser.parse_args()
    result = asyncio.run(run_level(args.sessions, args.base_url, args.turns, args.think))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
