"""Section: one long session; does anything grow with the number of turns?"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import llm

from agent.engine.history import HistoryLimits, bound_history
from agent.tools import get_current_time
from testing.engine import make_engine
from testing.servers.openai_server import Reply, ScriptedLLMServer, ToolCall, text_reply, tool_reply

from .common import rss_mb
from .sections import Context, table

NAME = "soak"
TITLE = "Soak: one long session, first turns vs last"


@dataclass
class SoakResult:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    silent_turns: int = 0
    history_items: int = 0

    def first_last(self) -> dict[str, list[float]]:
        """Turn wall time and CPU (ms): medians of the first and the last 100 turns; RSS
        after turn 100 (or the last, in a shorter run) and after the last."""
        return {
            "wall_ms": [
                statistics.median(part) * 1e3 for part in (self.wall[:100], self.wall[-100:])
            ],
            "cpu_ms": [statistics.median(part) * 1e3 for part in (self.cpu[:100], self.cpu[-100:])],
            "rss_mb": [self.rss_mb[min(99, len(self.rss_mb) - 1)], self.rss_mb[-1]],
        }


def _reply(body: dict[str, Any]) -> Reply:
    """Every 5th user turn calls a tool; every other request gets a short answer."""
    messages: list[Any] = body.get("messages") or []
    n = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "user")
    last = messages[-1] if messages else {}
    if body.get("tools") and n % 5 == 0 and isinstance(last, dict) and last.get("role") == "user":
        return tool_reply(ToolCall("get_current_time", {"timezone": "UTC"}))
    return text_reply("Here is a short answer of about a dozen words for you.")


async def run(ctx: Context) -> SoakResult:
    result, limits = SoakResult(), HistoryLimits()
    with ScriptedLLMServer(default=_reply, record=False) as server:
        engine = make_engine(server, timeout=30.0)
        history = llm.ChatContext()
        history.add_message(role="system", content="You are a soak test.")
        for i in range(ctx.sized(full=1000, quick=20)):
            history.add_message(role="user", content=f"Question {i}, tell me something?")
            bound_history(history, limits)
            wall, cpu = time.perf_counter(), time.process_time()
            turn = engine.run(history, [get_current_time])
            async for _ in turn:
                pass
            result.wall.append(time.perf_counter() - wall)
            result.cpu.append(time.process_time() - cpu)
            result.silent_turns += not turn.text.strip()
            history.items.extend(turn.new_items)
            history.add_message(role="assistant", content=turn.text)
            if i % 100 == 99:
                gc.collect()
            result.rss_mb.append(rss_mb())
        result.history_items = len(history.items)
        await engine.llm.aclose()
    return result


def render(result: SoakResult) -> list[str]:
    n, (wall, cpu, rss) = len(result.wall), result.first_last().values()
    intro = (
        f"One text session of {n} turns against a zero-latency scripted server in this "
        "process (every 5th turn calls a tool), history bounded as the worker bounds it. "
        f"First vs last {min(100, n)} turns: if nothing grows, they match."
    )
    rows = [
        ("turns", str(n)),
        ("silent turns", str(result.silent_turns)),
        ("history items at the end", str(result.history_items)),
        ("turn wall time, median first / last 100", f"{wall[0]:.2f} / {wall[1]:.2f} ms"),
        ("turn CPU, median first / last 100", f"{cpu[0]:.2f} / {cpu[1]:.2f} ms"),
        ("RSS after turn 100 / last", f"{rss[0]:.1f} / {rss[1]:.1f} MB"),
    ]
    return [intro, table("what | value", rows)]


def numbers(result: SoakResult) -> Mapping[str, object]:
    first_last = result.first_last()
    return {
        "turns": len(result.wall),
        "silent_turns": result.silent_turns,
        "history_items": result.history_items,
        "wall_ms_median_first_last": [round(ms, 3) for ms in first_last["wall_ms"]],
        "cpu_ms_median_first_last": [round(ms, 3) for ms in first_last["cpu_ms"]],
        "rss_mb_first_last": [round(mb, 1) for mb in first_last["rss_mb"]],
    }
