"""Section: many text sessions in one worker process."""

from __future__ import annotations

import asyncio
import gc
import json
import random
import sys
import time
from typing import Any

from livekit.agents import AgentSession

from agent.config.settings import DEFAULT_INSTRUCTIONS
from agent.voice.assistant import Assistant

from .no_tool import TOOLS, FirstTextOutput
from .sections import Context, bench_engine, cells, quiet_logs, rss_mb, run_module, summary, table

NAME = "sessions"
TITLE = "Concurrent text sessions in one process"


async def _session(
    sid: int, base_url: str, turns: int, think: float, started: asyncio.Barrier | None = None
) -> tuple[AgentSession[None], list[tuple[str, float, float]]]:
    """A session as the worker hosts it, saying `turns` turns, each after a random pause
    ("the user thinking"); the tag, start and first text out of each."""
    rng, engine = random.Random(sid), bench_engine(base_url)
    session: AgentSession[None] = AgentSession(llm=engine.llm)
    session.output.transcription = out = FirstTextOutput()
    await session.start(Assistant(engine=engine, instructions=DEFAULT_INSTRUCTIONS, tools=TOOLS))
    if started is not None:
        # users arrive over time in a real worker; a burst of start-ups is not a turn's cost
        await started.wait()
    timings: list[tuple[str, float, float]] = []
    for k in range(turns):
        await asyncio.sleep(rng.uniform(0, 2 * think))
        tag, out.first_at, begun = f"session {sid} turn {k}", None, time.perf_counter()
        await session.run(user_input=tag)
        if out.first_at is not None:
            timings.append((tag, begun, out.first_at))
    return session, timings


async def run_level(sessions: int, turns: int, think: float, base_url: str) -> dict[str, object]:
    """The child's side: `sessions` sessions at once in this process."""
    quiet_logs()
    # one session first, closed again: imports, caches and the first connection are
    # paid before the baseline, so the delta is what sessions themselves hold
    warm, _ = await _session(-1, base_url, 1, 0.0)
    await warm.aclose()
    gc.collect()
    baseline, barrier = rss_mb(), asyncio.Barrier(sessions)
    cpu, wall = time.process_time(), time.perf_counter()
    ran = await asyncio.gather(
        *(_session(i, base_url, turns, think, barrier) for i in range(sessions))
    )
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    gc.collect()
    peak = rss_mb()  # every session still open, its history held
    for session, _ in ran:
        await session.aclose()
    timings = [t for _, session_timings in ran for t in session_timings]
    return {"rss_mb": [baseline, peak], "cpu_s": cpu, "wall_s": wall, "turns": timings}


def run(ctx: Context) -> dict[str, dict[str, Any]]:
    """Each level's numbers by its number of sessions: `min_turns` turns at least, each."""
    server, levels = ctx.server, {}
    # quick: one process of two sessions (a second process costs its imports again)
    min_turns, think = ctx.sized(full=30, quick=3), ctx.sized(full=0.5, quick=0.02)
    for n in ctx.sized(full=[1, 10, 50, 100], quick=[2]):
        server.reset()
        turns = max(3, -(-min_turns // n))
        args = (str(n), str(turns), str(think), server.base_url)
        data = json.loads(run_module("bench.sessions", *args, timeout=300))
        # each turn's tag is the user message that ends its request
        served = {r.messages[-1]["content"]: r.ttft for r in server.requests()}
        # added latency: first text out - the server's TTFT for that very request
        timed = [(end - start, served.get(tag)) for tag, start, end in data["turns"]]
        added = [(out - ttft) * 1000 for out, ttft in timed if ttft is not None]
        (baseline, peak), wall = data["rss_mb"], data["wall_s"]
        levels[str(n)] = {
            "turns": len(added),
            "turns_per_second": round(len(data["turns"]) / wall, 2),
            # worker CPU seconds per wall second (1.0 = one core saturated)
            "cpu_busy": round(data["cpu_s"] / wall, 3),
            "added_ms": summary(added),
            "first_text_ms": summary([out * 1000 for out, ttft in timed if ttft is not None]),
            "rss_per_session_mb": round((peak - baseline) / n, 2),
            "rss_baseline_mb": round(baseline, 1),
        }
    return levels


def render(levels: dict[str, dict[str, Any]]) -> list[str]:
    return [
        "Each level in a fresh process; added latency = time to first text out - the "
        "server's TTFT for that very request. Method: docs/benchmarks.md#sessions.",
        table(
            "sessions | turns | turns/s | worker CPU busy | added ms p50 | added ms p95 | "
            "first text ms p95 | RSS MB per session | RSS MB baseline",
            [
                [
                    *(n, r["turns"], f"{r['turns_per_second']:.1f}", f"{r['cpu_busy']:.2f}"),
                    *(*cells(r["added_ms"]), cells(r["first_text_ms"])[1]),
                    *(f"{r['rss_per_session_mb']:.2f}", f"{r['rss_baseline_mb']:.1f}"),
                ]
                for n, r in levels.items()
            ],
        ),
    ]


numbers = dict  # run() wrote them as results.json holds them

if __name__ == "__main__":
    n, turns, think, base_url = sys.argv[1:5]
    json.dump(asyncio.run(run_level(int(n), int(turns), float(think), base_url)), sys.stdout)
