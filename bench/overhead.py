"""Sections: CPU time our code adds to a turn, the backend client excluded; and how much MCP
tool discovery adds to session start-up and to a turn."""

from __future__ import annotations

import cProfile
import functools
import gc
import logging
import pstats
import statistics
import sys
import sysconfig
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import openai
from livekit.agents import llm

from agent.config.tool_files import McpServerSpec
from agent.engine.speech_filter import ToolCallTextFilter
from agent.ops.logging import get_logger
from agent.tools import McpTools, aclose_tools, get_current_time, setup_tools
from testing.servers.mcp_server import SCRIPT, McpHttpServer
from testing.servers.openai_server import ToolCall, text_reply, tool_reply

from .no_tool import TOOLS, chat_ctx, interleaved, settle
from .sections import REPLY, ROOT, Context, Part, bench_engine, goal, pct, summary, table
from .server_proc import RemoteLLMServer

NAME = "overhead"
TITLE = "Engine overhead per turn (client CPU time)"
# what the bare SDK turn pays too: hot spots are looked for elsewhere
FLOOR = ("/openai/", "/httpx", "/httpcore/", "/anyio/", "/h11/")
STDLIB = sysconfig.get_paths()["stdlib"]

Turn = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class OverheadResult:
    cpu_ms: dict[str, list[float]]  # per turn, by variant: the floor first, the engine's last
    breakdown: list[tuple[str, str, float]]  # per-turn work, where it is, CPU ms timed alone
    hot_spots: list[tuple[str, float, float]]  # outside the floor: self, cumulative ms per turn
    profiled_turns: int


async def run(ctx: Context) -> OverheadResult:
    server, warmup = ctx.server, ctx.plan.warmup
    reps, profile_turns = ctx.sized(full=150, quick=3), ctx.sized(full=40, quick=2)
    engine, chat = bench_engine(server.base_url), chat_ctx("What time is it?")
    request: dict[str, Any] = {"model": "test-model", "stream": True}
    request["messages"], _ = chat.to_provider_format("openai")
    request["tools"] = llm.ToolContext(TOOLS).parse_function_tools("openai")
    sdk = openai.AsyncClient(api_key="not-needed", base_url=server.base_url, max_retries=0)

    async def sdk_turn() -> None:
        stream = await sdk.chat.completions.create(**request)
        assert isinstance(stream, openai.AsyncStream)
        async with stream:
            async for _ in stream:
                pass

    async def provider_turn() -> None:
        async with engine.llm.chat(chat_ctx=chat, tools=TOOLS) as stream:
            async for _ in stream:
                pass

    async def engine_turn() -> None:
        async for _ in engine.run(chat, TOOLS):
            pass

    variants: dict[str, Turn] = {
        "openai SDK stream, same request (floor)": sdk_turn,
        "provider.chat() (livekit LLMStream + our provider)": provider_turn,
        "TurnEngine turn (streamed tool pass, default)": engine_turn,
    }
    # one word per chunk, as a real server streams tokens: per-chunk costs show
    reply = text_reply(REPLY, token_delay=ctx.sized(full=0.002, quick=0.0))
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for k, (measured, name) in enumerate(interleaved([*variants], reps=reps, warmup=warmup)):
            server.script(reply)
            started = time.process_time()
            await variants[name]()
            await settle()
            if measured:
                cpu[name].append((time.process_time() - started) * 1000)
            if k % 60 == 0:
                server.reset()  # keep the server's request log short
        hot = await _profile(server, engine_turn, profile_turns, reply)
    finally:
        await sdk.close()
        await engine.llm.aclose()
    return OverheadResult(cpu, breakdown(chat, max(20, reps)), hot, profile_turns)


def breakdown(chat: llm.ChatContext, iterations: int) -> list[tuple[str, str, float]]:
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

    def cpu_ms(fn: Callable[[], object]) -> float:
        fn()  # caches warm
        started = time.process_time()
        for _ in range(iterations):
            fn()
        return (time.process_time() - started) * 1000 / iterations

    steps: list[tuple[str, str, Callable[[], object]]] = [
        (
            "tool schemas built for the request",
            "providers/openai_compatible.py _tool_schemas -> ToolContext.parse_function_tools",
            lambda: llm.ToolContext(TOOLS).parse_function_tools("openai"),
        ),
        (
            "messages converted to OpenAI format",
            "providers/openai_compatible.py _request -> ChatContext.to_provider_format",
            lambda: chat.to_provider_format("openai"),
        ),
        (
            "turn set-up (context copy, ToolContext, flatten)",
            "agent/engine/turns.py Turn.__init__",
            lambda: llm.ToolContext(list(TOOLS)).flatten() and chat.copy(),
        ),
        (
            f"speech filter over {len(words)} deltas",
            "agent/engine/speech_filter.py ToolCallTextFilter.push",
            text_filter,
        ),
        (
            "two structured log lines (JSON, to /dev/null)",
            "agent/engine/turns.py _record, _generate",
            log_lines,
        ),
    ]
    return [(step, where, cpu_ms(fn)) for step, where, fn in steps]


async def _profile(
    server: RemoteLLMServer, engine_turn: Turn, turns: int, reply: object
) -> list[tuple[str, float, float]]:
    """The 10 functions with the most self time in a turn, outside the SDK/HTTP floor."""
    server.reset()
    gc.collect()
    profiler = cProfile.Profile(time.process_time)  # CPU time: waiting in epoll is no work
    for _ in range(turns):
        server.script(reply)  # type: ignore[arg-type]
        profiler.enable()
        await engine_turn()
        await settle()
        profiler.disable()
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    spots = [
        (_where(filename, line, name), tottime * 1000 / turns, cumtime * 1000 / turns)
        for (filename, line, name), (_, _, tottime, cumtime, _) in stats.items()
        if not _in_floor(filename)
    ]
    return sorted(spots, key=lambda spot: -spot[1])[:10]


def _in_floor(filename: str) -> bool:
    # builtins ("~") and the stdlib are everyone's; their callers show up by self time
    stdlib = filename.startswith(STDLIB) and "site-packages" not in filename
    return filename == "~" or stdlib or any(m in filename for m in FLOOR)


def _where(filename: str, line: int, name: str) -> str:
    """Where a function is: its path after site-packages or the checkout, line and name."""
    anchor = next((a for a in ("site-packages/", f"{ROOT}/") if a in filename), None)
    return f"{filename.split(anchor, 1)[1] if anchor else filename}:{line} {name}"


def render(result: OverheadResult) -> list[str]:
    rows = {name: (pct(ms, 50), pct(ms, 95)) for name, ms in result.cpu_ms.items()}
    floor, engine = next(iter(rows.values())), [*rows.values()][-1]
    over = engine[0] - floor[0]
    return [
        "Over floor: the turn's quantile - the bare SDK's. Method: docs/benchmarks.md#overhead.",
        table(
            "variant | CPU ms p50 | CPU ms p95 | over floor p50 | over floor p95",
            [
                [name, *(f"{ms:.2f}" for ms in (p50, p95, p50 - floor[0], p95 - floor[1]))]
                for name, (p50, p95) in rows.items()
            ],
        ),
        goal(("<= 2 ms p50 of engine overhead", f"{over:.2f} ms", over <= 2)),
        "Where it goes, each piece of per-turn work timed alone (CPU ms, no profiler):",
        table(
            "step | where | CPU ms", [[s, f"`{w}`", f"{ms:.3f}"] for s, w, ms in result.breakdown]
        ),
        f"cProfile over {result.profiled_turns} turns, most self time outside the SDK, HTTP "
        "client and stdlib (profiler-inflated: read as proportions):",
        table(
            "function | self ms/turn | cumulative ms/turn",
            [[f"`{f}`", f"{own:.3f}", f"{cum:.2f}"] for f, own, cum in result.hot_spots],
        ),
    ]


def numbers(result: OverheadResult) -> Mapping[str, object]:
    return {
        "cpu_ms": {name: summary(ms) for name, ms in result.cpu_ms.items()},
        "breakdown_cpu_ms": {step: round(ms, 4) for step, _, ms in result.breakdown},
    }


Tools = list[llm.Tool | llm.Toolset]


@dataclass(frozen=True, slots=True)
class ToolsResult:
    medians_ms: dict[str, float]
    runs: int


async def median_ms(fn: Callable[[], Awaitable[object]], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def startup(spec: McpServerSpec) -> None:
    tools = [McpTools([spec], retry_initial=3600)]
    await setup_tools(tools)
    await aclose_tools(tools)


async def run_mcp(ctx: Context) -> ToolsResult:
    server, runs, medians = ctx.server, ctx.sized(full=10, quick=1), {}
    with McpHttpServer("http") as http, McpHttpServer("sse") as sse:
        spec, quiet = functools.partial(McpServerSpec, name="w"), {"FASTMCP_LOG_LEVEL": "ERROR"}
        specs = {
            "streamable_http": spec(transport="streamable_http", url=http.url),
            "sse": spec(transport="sse", url=sse.url),
            "stdio": spec(transport="stdio", command=sys.executable, args=[str(SCRIPT)], env=quiet),
            "unreachable": spec(transport="streamable_http", url="http://127.0.0.1:9/mcp"),
        }
        # an unreachable MCP server logs errors by design; they are not the bench's
        logging.disable(logging.CRITICAL)
        try:
            for name, server_spec in specs.items():
                start = functools.partial(startup, server_spec)
                medians[f"startup {name}, first in process"] = await median_ms(start, 1)
                medians[f"startup {name}"] = await median_ms(start, runs)
        finally:
            logging.disable(logging.NOTSET)

        mcp = McpTools([specs["streamable_http"]])
        await mcp.setup()
        toolset: Tools = [get_current_time, mcp]

        async def flatten() -> None:
            llm.ToolContext(toolset).flatten()

        medians["flatten tools per turn (5 tools)"] = await median_ms(flatten, runs * 100)
        engine = bench_engine(server.base_url)

        async def turn(tools: Tools, *replies: object) -> None:
            server.script(*replies)  # type: ignore[arg-type]
            chat = llm.ChatContext()
            chat.add_message(role="user", content="hi")
            async for _ in engine.run(chat, tools):
                pass

        said, called = text_reply("Hi."), text_reply("Ok.")
        in_process = tool_reply(ToolCall("get_current_time"))
        forecast = tool_reply(ToolCall("get_forecast", {"city": "Oslo"}))
        turns: dict[str, tuple[Tools, list[object]]] = {
            "turn, no tools": ([], [said]),
            "turn, 5 tools offered": (toolset, [said]),
            "turn, in-process tool call": (toolset, [in_process, called]),
            "turn, MCP tool call (http)": (toolset, [forecast, called]),
        }
        for name, (tools, replies) in turns.items():
            medians[name] = await median_ms(functools.partial(turn, tools, *replies), runs)
        await mcp.aclose()
        await engine.llm.aclose()
    return ToolsResult(medians, runs)


def render_mcp(result: ToolsResult) -> list[str]:
    return [
        f"Medians over {result.runs} runs (flattening: {result.runs * 100}). Method: "
        "docs/benchmarks.md#tools.",
        table("what | ms p50", [[name, f"{ms:.2f}"] for name, ms in result.medians_ms.items()]),
    ]


def mcp_numbers(result: ToolsResult) -> Mapping[str, object]:
    return {name: round(ms, 3) for name, ms in result.medians_ms.items()}


MCP = Part("tools", "MCP tools: start-up and per-turn cost", run_mcp, render_mcp, mcp_numbers)
