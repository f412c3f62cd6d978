"""Section: many text sessions in one worker process; and the idle worker's memory, process by
process (the voice section reports it)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import random
import sys
import time
from subprocess import DEVNULL
from typing import Any

import psutil
from livekit.agents import AgentSession
from livekit.agents.utils.hw import get_cpu_monitor

from agent.config.settings import DEFAULT_INSTRUCTIONS
from agent.voice.assistant import Assistant
from testing.cli import spawn_cli, stop
from testing.polling import free_port

from .common import (
    MB,
    ROOT,
    FirstTextOutput,
    bench_engine,
    child_env,
    pss_mb,
    quiet_logging,
    rss_mb,
    run_module,
)
from .no_tool import TOOLS
from .sections import Context, cells, summary, table

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
    quiet_logging()
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
    """`min_turns` turns per level at least (a lone session says them one after another);
    each level's numbers by its number of sessions."""
    server, levels = ctx.server, {}
    # quick: one process of two sessions (a second process costs its imports again)
    min_turns, think = ctx.sized(full=30, quick=3), ctx.sized(full=0.5, quick=0.02)
    for n in ctx.sized(full=[1, 10, 50, 100], quick=[2]):
        server.reset()
        turns = max(3, -(-min_turns // n))
        args = (str(n), str(turns), str(think), server.base_url)
        proc = run_module("bench.sessions", *args, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"{n} sessions failed: {proc.stderr[-2000:]}")
        data = json.loads(proc.stdout)
        served = {r.last_user_text: r.ttft for r in server.requests()}
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


Row = tuple[str, float, float | None]
"""What a process is, its RSS and its PSS (where measured), in MB."""


def _role(proc: psutil.Process, root: int) -> str:
    if proc.pid == root:
        return "main (voice-agent start)"
    cmd = " ".join(proc.cmdline())
    if "resource_tracker" in cmd:
        return "multiprocessing resource tracker"
    if "forkserver" in cmd:
        # the forkserver itself is the main process's child; job processes are its children
        return "forkserver" if proc.ppid() == root else "idle job process (prewarmed)"
    return cmd[:60]


def _tree(root: int) -> list[Row]:
    rows: list[Row] = []
    main = psutil.Process(root)
    for proc in [main, *sorted(main.children(recursive=True), key=lambda p: p.pid)]:
        with contextlib.suppress(psutil.Error):  # exited while we looked
            rows.append((_role(proc, root), proc.memory_info().rss / MB, pss_mb(proc.pid)))
    return rows


def idle_worker(llm_url: str, *, timeout: float = 90) -> list[Row]:
    """`voice-agent start` against a closed LiveKit port, measured once the forkserver has
    forked its prewarmed job processes (one per CPU, livekit's default for `start`) and
    memory settles; then the whole tree.

    livekit starts its process pool before it first connects to LiveKit, and retries the
    connection with a growing pause: meanwhile the tree is what an idle worker holds, but
    the websocket.
    """
    env = child_env(
        drop=("LLM_", "LIVEKIT_", "WORKER_", "STT_", "TTS_"),
        LLM_BASE_URL=llm_url,
        LLM_MODEL="test-model",
        # nothing listens there: the worker keeps retrying, idle, for minutes
        LIVEKIT_URL=f"ws://127.0.0.1:{free_port()}",
        WORKER_CONNECT_RETRIES="1000",
        WORKER_PORT="0",
        LOG_FORMAT="json",
    )
    idle = math.ceil(get_cpu_monitor().cpu_count())
    # its own process group, so everything it forked is ours to end
    proc = spawn_cli(["start"], env=env, cwd=ROOT, stdout=DEVNULL, stderr=DEVNULL, new_session=True)
    try:
        deadline, stable_since, last = time.monotonic() + timeout, time.monotonic(), 0.0
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited early with status {proc.returncode}")
            tree = _tree(proc.pid)
            ready = sum(role.startswith("idle job") for role, _, _ in tree) >= idle
            total = sum(rss for _, rss, _ in tree)
            if not ready or abs(total - last) > 1.0:
                stable_since = time.monotonic()
            elif time.monotonic() - stable_since >= 2.0:
                pss = sum(pss or 0.0 for _, _, pss in tree)
                # summed RSS counts shared pages once per process; PSS does not
                return [(f"idle worker: {role}", rss, pss) for role, rss, pss in tree] + [
                    ("idle worker: whole process tree", total, pss)
                ]
            last = total
            time.sleep(0.25)
        raise RuntimeError(f"the worker's {idle} idle processes did not settle")
    finally:
        stop(proc, within=20, group=True)


if __name__ == "__main__":
    n, turns, think, base_url = sys.argv[1:5]
    json.dump(asyncio.run(run_level(int(n), int(turns), float(think), base_url)), sys.stdout)
