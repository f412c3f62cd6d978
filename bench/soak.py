"""Section: one long session; does anything grow with the number of turns?"""

from __future__ import annotations

import gc
import time
from collections.abc import Mapping
from statistics import median
from typing import Any

from livekit.agents import llm

from agent.engine.history import HistoryLimits, bound_history
from agent.tools import get_current_time
from testing.engine import make_engine
from testing.servers.openai_server import Reply, ScriptedLLMServer, ToolCall, text_reply, tool_reply

from .common import rss_mb
from .sections import Context, table

NAME = "soak"
NUMBERS = ("wall_ms_median_first_last", "cpu_ms_median_first_last", "rss_mb_first_last")
TITLE = "Soak: one long session, first turns vs last"


def _reply(body: dict[str, Any]) -> Reply:
    """Every 5th user turn calls a tool; every other request gets a short answer."""
    messages: list[Any] = body.get("messages") or []
    n = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "user")
    last = messages[-1] if messages else {}
    if body.get("tools") and n % 5 == 0 and isinstance(last, dict) and last.get("role") == "user":
        return tool_reply(ToolCall("get_current_time", {"timezone": "UTC"}))
    return text_reply("Here is a short answer of about a dozen words for you.")


async def run(ctx: Context) -> dict[str, Any]:
    """Its numbers: turn wall time and CPU (ms), medians of the first and the last 100
    turns; RSS after turn 100 (or the last, in a shorter run) and after the last."""
    wall, cpu, rss, silent = [], [], [], 0
    with ScriptedLLMServer(default=_reply, record=False) as server:
        engine = make_engine(server, timeout=30.0)
        history = llm.ChatContext()
        history.add_message(role="system", content="You are a soak test.")
        for i in range(ctx.sized(full=1000, quick=20)):
            history.add_message(role="user", content=f"Question {i}, tell me something?")
            bound_history(history, HistoryLimits())
            started, cpu_started = time.perf_counter(), time.process_time()
            turn = engine.run(history, [get_current_time])
            async for _ in turn:
                pass
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - cpu_started) * 1000)
            silent += not turn.text.strip()
            history.items.extend(turn.new_items)
            history.add_message(role="assistant", content=turn.text)
            if i % 100 == 99:
                gc.collect()
            rss.append(rss_mb())
        await engine.llm.aclose()
    return {
        "turns": len(wall),
        "silent_turns": silent,
        "history_items": len(history.items),
        **{
            f"{name}_ms_median_first_last": [
                round(median(ms[:100]), 3),
                round(median(ms[-100:]), 3),
            ]
            for name, ms in (("wall", wall), ("cpu", cpu))
        },
        "rss_mb_first_last": [round(rss[min(99, len(rss) - 1)], 1), round(rss[-1], 1)],
    }


def render(r: dict[str, Any]) -> list[str]:
    n, wall, cpu, rss = r["turns"], *(r[k] for k in NUMBERS)
    intro = (
        f"One text session of {n} turns against a zero-latency scripted server in this "
        "process (every 5th turn calls a tool), history bounded as the worker bounds it. "
        f"First vs last {min(100, n)} turns: if nothing grows, they match."
    )
    rows = [
        ("turns", str(n)),
        ("silent turns", str(r["silent_turns"])),
        ("history items at the end", str(r["history_items"])),
        ("turn wall time, median first / last 100", f"{wall[0]:.2f} / {wall[1]:.2f} ms"),
        ("turn CPU, median first / last 100", f"{cpu[0]:.2f} / {cpu[1]:.2f} ms"),
        ("RSS after turn 100 / last", f"{rss[0]:.1f} / {rss[1]:.1f} MB"),
    ]
    return [intro, table("what | value", rows)]


def numbers(r: dict[str, Any]) -> Mapping[str, object]:
    return r  # run() wrote them as results.json holds them
