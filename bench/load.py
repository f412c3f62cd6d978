"""Sections: one long session (does anything grow with the number of turns?), and many
concurrent text sessions against a backend having a bad day."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import median
from typing import Any

import psutil
from livekit.agents import llm

from agent.engine.history import HistoryLimits, bound_history
from agent.engine.turns import Turn, TurnEngine
from agent.tools import get_current_time
from testing.engine import make_engine
from testing.servers.faults import FaultyBackend
from testing.servers.openai_server import Reply, ScriptedLLMServer, ToolCall, text_reply, tool_reply

from .sections import Context, Part, pct, rss_mb, summary, table

NAME = "faults"
TITLE = "Concurrent sessions against a faulty backend"
FAULT_RATE = 0.1


@dataclass
class LoadResult:
    sessions: int
    turns: int
    timeout: float
    faults_injected: dict[str, int]
    sockets_before: int
    rss_before_mb: float
    turn_seconds: list[float] = field(default_factory=list)
    first_text_seconds: list[float] = field(default_factory=list)
    silent_turns: int = 0
    apologies: int = 0
    fallbacks: int = 0
    leaked_tasks: int = 0
    sockets_after: int = 0
    rss_after_mb: float = 0.0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0


def open_sockets() -> int:
    """This process's sockets: TCP, UDP and Unix."""
    return len(psutil.Process().net_connections(kind="all"))


async def run_load(
    *,
    sessions: int = 50,
    turns: int = 20,
    fault_rate: float = FAULT_RATE,
    timeout: float = 2.0,  # noqa: ASYNC109 (the backend timeout under test, not ours)
    seed: int = 7,
) -> LoadResult:
    backend = FaultyBackend(fault_rate=fault_rate, seed=seed)
    with ScriptedLLMServer(default=backend) as server:
        gc.collect()
        result = LoadResult(
            sessions, sessions * turns, timeout, backend.injected, open_sockets(), rss_mb()
        )
        engine = make_engine(server, timeout=timeout)
        tasks_before = asyncio.all_tasks()
        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.gather(*(_session(engine, turns, result) for _ in range(sessions)))
        result.wall_seconds = time.perf_counter() - started
        result.cpu_seconds = time.process_time() - cpu_started
        await engine.llm.aclose()
        await asyncio.sleep(0.1)  # let closed transports finish
        result.leaked_tasks = len(asyncio.all_tasks() - tasks_before)
        gc.collect()
        result.sockets_after, result.rss_after_mb = open_sockets(), rss_mb()
    return result


async def _session(engine: TurnEngine, turns: int, result: LoadResult) -> None:
    history = llm.ChatContext()
    history.add_message(role="system", content="You are a load test.")
    for i in range(turns):
        turn, wall, _ = await _say(engine, history, f"Question number {i}?")
        result.turn_seconds.append(wall)
        if turn.stats.time_to_first_text is not None:
            result.first_text_seconds.append(turn.stats.time_to_first_text)
        result.silent_turns += not turn.text.strip()
        result.apologies += turn.stats.outcome == "apology"
        result.fallbacks += turn.stats.outcome == "fallback"


async def _say(
    engine: TurnEngine, history: llm.ChatContext, text: str, *, bound: bool = False
) -> tuple[Turn, float, float]:
    """One turn of a session (the history bounded first, as the worker bounds it, where
    `bound`): the turn, its wall and CPU seconds; its items join the history."""
    history.add_message(role="user", content=text)
    if bound:
        bound_history(history, HistoryLimits())
    started, cpu_started = time.perf_counter(), time.process_time()
    turn = engine.run(history, [get_current_time])
    async for _ in turn:
        pass
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    history.items.extend(turn.new_items)
    history.add_message(role="assistant", content=turn.text)
    return turn, wall, cpu


async def run(ctx: Context) -> LoadResult:
    sessions, turns = ctx.sized(full=(50, 20), quick=(5, 3))
    return await run_load(sessions=sessions, turns=turns)


def render(r: LoadResult) -> list[str]:
    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.0f} ms"

    t, f = r.turn_seconds, r.first_text_seconds
    p = {q: (pct(t, q) if t else 0.0, pct(f, q) if f else 0.0) for q in (50, 95)}
    intro = (
        f"A fault in {FAULT_RATE:.0%} of the replies, the client's timeout {r.timeout:g} s. "
        "Method: docs/benchmarks.md#faults."
    )
    rows = [
        ("sessions x turns", f"{r.sessions} x {r.turns // max(r.sessions, 1)}"),
        ("turns", f"{len(t)}"),
        ("faults injected", f"{sum(r.faults_injected.values())} {r.faults_injected}"),
        ("silent turns", f"{r.silent_turns}"),
        ("apologies / fallback replies", f"{r.apologies} / {r.fallbacks}"),
        ("turn p50 / p95 / max", f"{ms(p[50][0])} / {ms(p[95][0])} / {ms(max(t, default=0))}"),
        ("first text p50 / p95", f"{ms(p[50][1])} / {ms(p[95][1])}"),
        ("limit (timeout + 1 s)", ms(r.timeout + 1)),
        # the scripted server runs in a thread of this process: its CPU is included
        ("process CPU per turn", ms(r.cpu_seconds / max(len(t), 1))),
        ("leaked asyncio tasks", f"{r.leaked_tasks}"),
        ("open sockets before / after", f"{r.sockets_before} / {r.sockets_after}"),
        ("RSS before / after", f"{r.rss_before_mb:.1f} / {r.rss_after_mb:.1f} MB"),
        ("wall time", f"{r.wall_seconds:.1f} s"),
    ]
    return [intro, table("what | value", rows)]


def numbers(result: LoadResult) -> Mapping[str, object]:
    return {
        "turns": len(result.turn_seconds),
        "faults_injected": sum(result.faults_injected.values()),
        "silent_turns": result.silent_turns,
        "turn_ms": summary([t * 1000 for t in result.turn_seconds]),
        "first_text_ms": summary([t * 1000 for t in result.first_text_seconds]),
        "leaked_tasks": result.leaked_tasks,
        "rss_growth_mb": round(result.rss_after_mb - result.rss_before_mb, 1),
    }


def _soak_reply(body: dict[str, Any]) -> Reply:
    """Every 5th user turn calls a tool; every other request gets a short answer."""
    messages: list[Any] = body.get("messages") or []
    n = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "user")
    last = messages[-1] if messages else {}
    if body.get("tools") and n % 5 == 0 and isinstance(last, dict) and last.get("role") == "user":
        return tool_reply(ToolCall("get_current_time", {"timezone": "UTC"}))
    return text_reply("Here is a short answer of about a dozen words for you.")


async def run_soak(ctx: Context) -> dict[str, Any]:
    """Its numbers: turn wall time and CPU (ms), medians of the first and the last 100
    turns; RSS after turn 100 (or the last, in a shorter run) and after the last."""
    wall, cpu, rss, silent = [], [], [], 0
    with ScriptedLLMServer(default=_soak_reply, record=False) as server:
        engine = make_engine(server, timeout=30.0)
        history = llm.ChatContext()
        history.add_message(role="system", content="You are a soak test.")
        for i in range(ctx.sized(full=1000, quick=20)):
            text = f"Question {i}, tell me something?"
            turn, turn_wall, turn_cpu = await _say(engine, history, text, bound=True)
            wall.append(turn_wall * 1000)
            cpu.append(turn_cpu * 1000)
            silent += not turn.text.strip()
            if i % 100 == 99:
                gc.collect()
            rss.append(rss_mb())
        await engine.llm.aclose()
    medians = {
        f"{name}_ms_median_first_last": [round(median(ms[:100]), 3), round(median(ms[-100:]), 3)]
        for name, ms in (("wall", wall), ("cpu", cpu))
    }
    return {
        "turns": len(wall),
        "silent_turns": silent,
        "history_items": len(history.items),
        **medians,
        "rss_mb_first_last": [round(rss[min(99, len(rss) - 1)], 1), round(rss[-1], 1)],
    }


def render_soak(r: dict[str, Any]) -> list[str]:
    n, (wall, cpu, rss) = r["turns"], (r[k] for k in SOAK_NUMBERS)
    intro = f"Method: docs/benchmarks.md#soak. First vs last {min(100, n)} turns."
    rows = [
        ("turns", str(n)),
        ("silent turns", str(r["silent_turns"])),
        ("history items at the end", str(r["history_items"])),
        ("turn wall time, median first / last 100", f"{wall[0]:.2f} / {wall[1]:.2f} ms"),
        ("turn CPU, median first / last 100", f"{cpu[0]:.2f} / {cpu[1]:.2f} ms"),
        ("RSS after turn 100 / last", f"{rss[0]:.1f} / {rss[1]:.1f} MB"),
    ]
    return [intro, table("what | value", rows)]


SOAK_NUMBERS = ("wall_ms_median_first_last", "cpu_ms_median_first_last", "rss_mb_first_last")
# run_soak() writes the numbers as results.json holds them
SOAK = Part("soak", "Soak: one long session, first turns vs last", run_soak, render_soak, dict)
