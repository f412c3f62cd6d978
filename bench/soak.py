"""Section: one long session; does anything grow with the number of turns?

Runs a text session against a zero-latency scripted server (every 5th turn calls a
tool), so a turn's time is almost all our own work plus the local HTTP round trip.
Compares the first and last 100 turns: per-turn wall time, per-turn CPU, and RSS.
"""

from __future__ import annotations

import asyncio
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
from .sections import Context, key_values

NAME = "soak"
TITLE = "Soak: one long session, first turns vs last"


@dataclass
class SoakResult:
    turns: int
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    silent_turns: int = 0
    history_items: int = 0

    def first_last_ms(self, values: list[float], n: int = 100) -> tuple[float, float]:
        """Medians of the first and the last `n` turns, in milliseconds."""
        return statistics.median(values[:n]) * 1e3, statistics.median(values[-n:]) * 1e3

    @property
    def rss_first_last(self) -> tuple[float, float]:
        """RSS after turn 100 (or the last, in a shorter run) and after the last."""
        return self.rss_mb[min(99, len(self.rss_mb) - 1)], self.rss_mb[-1]

    def rows(self) -> list[tuple[str, str]]:
        wall, cpu, rss = (
            self.first_last_ms(self.wall),
            self.first_last_ms(self.cpu),
            self.rss_first_last,
        )
        return [
            ("turns", str(len(self.wall))),
            ("silent turns", str(self.silent_turns)),
            ("history items at the end", str(self.history_items)),
            ("turn wall time, median first / last 100", f"{wall[0]:.2f} / {wall[1]:.2f} ms"),
            ("turn CPU, median first / last 100", f"{cpu[0]:.2f} / {cpu[1]:.2f} ms"),
            ("RSS after turn 100 / last", f"{rss[0]:.1f} / {rss[1]:.1f} MB"),
        ]


def _reply(body: dict[str, Any]) -> Reply:
    messages: list[Any] = body.get("messages") or []
    n = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "user")
    last = messages[-1] if isinstance(messages, list) and messages else {}
    if body.get("tools") and n % 5 == 0 and isinstance(last, dict) and last.get("role") == "user":
        return tool_reply(ToolCall("get_current_time", {"timezone": "UTC"}))
    return text_reply("Here is a short answer of about a dozen words for you.")


async def run_soak(*, turns: int = 1000, limits: HistoryLimits | None = None) -> SoakResult:
    limits = limits or HistoryLimits()
    result = SoakResult(turns=turns)
    with ScriptedLLMServer(default=_reply, record=False) as server:
        engine = make_engine(server, timeout=30.0)
        history = llm.ChatContext()
        history.add_message(role="system", content="You are a soak test.")
        for i in range(turns):
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


def run(ctx: Context) -> SoakResult:
    return asyncio.run(run_soak(turns=ctx.plan.soak_turns))


def render(result: SoakResult) -> list[str]:
    n = min(100, len(result.wall))
    intro = (
        f"One text session of {len(result.wall)} turns against a zero-latency scripted "
        "server in this process (every 5th turn calls a tool), history bounded as the "
        f"worker bounds it. First vs last {n} turns: if nothing grows, they match."
    )
    return key_values(intro, result.rows())


def numbers(result: SoakResult) -> Mapping[str, object]:
    return {
        "turns": len(result.wall),
        "silent_turns": result.silent_turns,
        "history_items": result.history_items,
        "wall_ms_median_first_last": [round(ms, 3) for ms in result.first_last_ms(result.wall)],
        "cpu_ms_median_first_last": [round(ms, 3) for ms in result.first_last_ms(result.cpu)],
        "rss_mb_first_last": [round(mb, 1) for mb in result.rss_first_last],
    }
