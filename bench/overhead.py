"""Section 3: CPU time our code adds to a turn, the backend client excluded.

Method: the server runs in another process, so this process's CPU time
(`time.process_time()`) is the client alone. The same turn is run three ways,
interleaved: the bare openai SDK streaming the identical request (the floor any
Python client pays for HTTP, SSE and parsing), our provider's `chat()` (livekit's
`LLMStream` plus our provider), and a whole `Turn` of the engine. Engine overhead is
turn minus floor. A cProfile run then attributes self time to packages, to show where
the difference goes (cProfile inflates everything; read it as proportions).
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import pstats
import sysconfig
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import openai
from livekit.agents import llm

from agent.engine.speech_filter import ToolCallTextFilter
from agent.ops.logging import get_logger
from testing.servers.openai_server import text_reply

from .common import REPLY, ROOT, Summary, bench_engine, chat_ctx, settle
from .first_text import TOOLS
from .plan import Plan
from .sections import Context, summary, table, verdict
from .server_proc import RemoteLLMServer

NAME = "overhead"
TITLE = "Engine overhead per turn (client CPU time)"


@dataclass(frozen=True, slots=True)
class CpuRow:
    variant: str
    cpu_ms: list[float]


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    """One piece of per-turn work on our side, timed alone (CPU ms per turn)."""

    step: str
    where: str
    cpu_ms: float


@dataclass(frozen=True, slots=True)
class HotSpot:
    """A function outside the SDK/HTTP floor, by self time."""

    function: str
    self_ms_per_turn: float
    cum_ms_per_turn: float


@dataclass(frozen=True, slots=True)
class OverheadResult:
    rows: list[CpuRow]
    breakdown: list[BreakdownRow]
    hot_spots: list[HotSpot]
    profiled_turns: int


def reply_script(token_delay: float) -> object:
    # one word per chunk, as a real server streams tokens: per-chunk costs show
    return text_reply(REPLY, token_delay=token_delay)


def run(ctx: Context) -> OverheadResult:
    return asyncio.run(measure(ctx.server, ctx.plan))


async def measure(server: RemoteLLMServer, plan: Plan) -> OverheadResult:
    reps, warmup, profile_turns = plan.cpu_reps, plan.warmup, plan.profile_turns
    token_delay = plan.cpu_token_delay
    engine = bench_engine(server.base_url)
    ctx = chat_ctx("What time is it?")
    messages, _ = ctx.to_provider_format("openai")
    tool_params = llm.ToolContext(TOOLS).parse_function_tools("openai")
    sdk = openai.AsyncClient(api_key="not-needed", base_url=server.base_url, max_retries=0)

    async def sdk_turn() -> None:
        stream = await sdk.chat.completions.create(
            model="test-model",
            messages=messages,  # type: ignore[arg-type]
            tools=tool_params,  # type: ignore[arg-type]
            stream=True,
        )
        assert isinstance(stream, openai.AsyncStream)
        async with stream:
            async for _ in stream:
                pass

    async def provider_turn() -> None:
        async with engine.llm.chat(chat_ctx=ctx, tools=TOOLS) as stream:
            async for _ in stream:
                pass

    async def engine_turn() -> None:
        async for _ in engine.run(ctx, TOOLS):
            pass

    variants: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("openai SDK stream, same request (floor)", sdk_turn),
        ("provider.chat() (livekit LLMStream + our provider)", provider_turn),
        ("TurnEngine turn (streamed tool pass, default)", engine_turn),
    ]
    cpu: dict[str, list[float]] = {name: [] for name, _ in variants}
    server.reset()
    try:
        for rep in range(-warmup, reps):
            k = rep % len(variants)
            for name, run in variants[k:] + variants[:k]:
                server.script(reply_script(token_delay))  # type: ignore[arg-type]
                started = time.process_time()
                await run()
                await settle()
                if rep >= 0:
                    cpu[name].append((time.process_time() - started) * 1000)
            if rep % 20 == 0:
                server.reset()  # keep the server's request log short
        hot = await _profile(server, engine_turn, profile_turns, token_delay)
    finally:
        await sdk.close()
        await engine.llm.aclose()
    return OverheadResult(
        [CpuRow(name, values) for name, values in cpu.items()],
        breakdown(ctx, iterations=max(20, reps)),
        hot,
        profile_turns,
    )


def _cpu_ms(fn: Callable[[], object], iterations: int) -> float:
    fn()  # caches warm
    started = time.process_time()
    for _ in range(iterations):
        fn()
    return (time.process_time() - started) * 1000 / iterations


def breakdown(ctx: llm.ChatContext, *, iterations: int) -> list[BreakdownRow]:
    """The per-request work a turn does besides HTTP, each piece timed on its own."""
    log = get_logger("bench.overhead")
    words = [w + " " for w in REPLY.split(" ")]

    def text_filter() -> None:
        f = ToolCallTextFilter()
        for w in words:
            f.push(w)
        f.flush()

    def log_lines() -> None:  # a turn writes two: "llm pass" and "turn finished"
        for _ in range(2):
            log.info("bench", turn_id="abc", ttft_ms=1.0, duration_ms=2.0, outcome="ok")

    steps: list[tuple[str, str, Callable[[], object]]] = [
        (
            "tool schemas built for the request",
            "providers/openai_compatible.py _request -> ToolContext.parse_function_tools",
            lambda: llm.ToolContext(TOOLS).parse_function_tools("openai"),
        ),
        (
            "messages converted to OpenAI format",
            "providers/openai_compatible.py _request -> ChatContext.to_provider_format",
            lambda: ctx.to_provider_format("openai"),
        ),
        (
            "turn set-up (context copy, ToolContext, flatten)",
            "agent/turns.py Turn.__init__",
            lambda: llm.ToolContext(list(TOOLS)).flatten() and ctx.copy(),
        ),
        (
            f"speech filter over {len(words)} deltas",
            "agent/speech_filter.py ToolCallTextFilter.push",
            text_filter,
        ),
        (
            "two structured log lines (JSON, to /dev/null)",
            "agent/turns.py _record, _generate",
            log_lines,
        ),
    ]
    return [BreakdownRow(step, where, _cpu_ms(fn, iterations)) for step, where, fn in steps]


async def _profile(
    server: RemoteLLMServer,
    engine_turn: Callable[[], Awaitable[None]],
    turns: int,
    token_delay: float,
) -> list[HotSpot]:
    """Functions with the most self time in a turn, outside the SDK/HTTP floor."""
    if turns <= 0:
        return []
    server.reset()
    gc.collect()
    # CPU time, not wall: waiting in epoll is not work
    profiler = cProfile.Profile(time.process_time)
    for _ in range(turns):
        server.script(reply_script(token_delay))  # type: ignore[arg-type]
        profiler.enable()
        await engine_turn()
        await settle()
        profiler.disable()
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    spots: list[HotSpot] = []
    for (filename, line, name), (_, _, tottime, cumtime, _) in stats.items():
        if not _in_floor(filename):
            spots.append(
                HotSpot(
                    _where(filename, line, name), tottime * 1000 / turns, cumtime * 1000 / turns
                )
            )
    spots.sort(key=lambda h: -h.self_ms_per_turn)
    return spots[:10]


# what the bare SDK turn pays too: hot spots are looked for elsewhere
_FLOOR = ("/openai/", "/httpx", "/httpcore/", "/anyio/", "/h11/")
_STDLIB = sysconfig.get_paths()["stdlib"]


def _in_floor(filename: str) -> bool:
    # builtins ("~") and the stdlib are everyone's; their callers show up by self time
    if filename == "~" or (filename.startswith(_STDLIB) and "site-packages" not in filename):
        return True
    return any(m in filename for m in _FLOOR)


def _where(filename: str, line: int, name: str) -> str:
    for anchor in (str(ROOT) + "/", "site-packages/"):
        if anchor in filename:
            filename = filename.split(anchor, 1)[1]
            break
    return f"{filename}:{line} {name}"


def render(result: OverheadResult) -> list[str]:
    rows = {r.variant: Summary.of(r.cpu_ms) for r in result.rows}
    floor, engine = rows[result.rows[0].variant], rows[result.rows[-1].variant]
    return [
        "Method: the server is in another process, so `time.process_time()` of this "
        "process is the client's CPU alone. The same request and streamed reply "
        "(one word per chunk) are run three ways, "
        "interleaved: the bare openai SDK (the floor any Python client pays for HTTP, "
        "SSE and parsing), our provider's `chat()` (livekit's `LLMStream` around the "
        "SDK), and a whole `Turn`. Overhead = quantile of the turn - the same quantile "
        "of the floor.",
        "",
        table(
            "variant | CPU ms p50 | CPU ms p95 | over floor p50 | over floor p95",
            [
                [
                    name,
                    *(f"{ms:.2f}" for ms in (s.p50, s.p95, s.p50 - floor.p50, s.p95 - floor.p95)),
                ]
                for name, s in rows.items()
            ],
        ),
        "",
        f"Goal: <= 2 ms p50 of engine overhead: {engine.p50 - floor.p50:.2f} ms, "
        f"{verdict(engine.p50 - floor.p50 <= 2)}.",
        "",
        "Where it goes, each piece of per-turn work timed alone (CPU ms, no profiler):",
        "",
        table(
            "step | where | CPU ms",
            [[r.step, f"`{r.where}`", f"{r.cpu_ms:.3f}"] for r in result.breakdown],
        ),
        "",
        f"cProfile (CPU timer) over {result.profiled_turns} turns: functions with the "
        "most self time outside the SDK, HTTP client and stdlib (profiler-inflated; "
        "read as proportions):",
        "",
        table(
            "function | self ms/turn | cumulative ms/turn",
            [
                [f"`{h.function}`", f"{h.self_ms_per_turn:.3f}", f"{h.cum_ms_per_turn:.2f}"]
                for h in result.hot_spots
            ],
        ),
        "",
    ]


def numbers(result: OverheadResult) -> Mapping[str, object]:
    return {
        "cpu_ms": {r.variant: summary(r.cpu_ms) for r in result.rows},
        "breakdown_cpu_ms": {r.step: round(r.cpu_ms, 4) for r in result.breakdown},
    }
