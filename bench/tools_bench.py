"""Section: how much MCP tool discovery adds to session start-up and to a turn."""

from __future__ import annotations

import functools
import logging
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from livekit.agents import llm

from agent.config.tool_files import McpServerSpec
from agent.tools import McpTools, aclose_tools, get_current_time, setup_tools
from testing.servers.mcp_server import SCRIPT, McpHttpServer
from testing.servers.openai_server import ToolCall, text_reply, tool_reply

from .common import bench_engine
from .sections import Context, table

NAME = "tools"
TITLE = "MCP tools: start-up and per-turn cost"
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


async def run(ctx: Context) -> ToolsResult:
    # an unreachable MCP server logs errors by design; they are not the bench's
    logging.disable(logging.CRITICAL)
    try:
        runs = ctx.sized(full=10, quick=1)
        return ToolsResult(await _measure(ctx, runs), runs)
    finally:
        logging.disable(logging.NOTSET)


async def _measure(ctx: Context, runs: int) -> dict[str, float]:
    server, medians = ctx.server, {}
    with McpHttpServer("http") as http, McpHttpServer("sse") as sse:
        specs = {
            "streamable_http": McpServerSpec(name="w", transport="streamable_http", url=http.url),
            "sse": McpServerSpec(name="w", transport="sse", url=sse.url),
            "stdio": McpServerSpec(
                name="w",
                transport="stdio",
                command=sys.executable,
                args=[str(SCRIPT)],
                env={"FASTMCP_LOG_LEVEL": "ERROR"},
            ),
            "unreachable": McpServerSpec(
                name="w", transport="streamable_http", url="http://127.0.0.1:9/mcp"
            ),
        }
        for name, spec in specs.items():
            start = functools.partial(startup, spec)
            medians[f"startup {name}, first in process"] = await median_ms(start, 1)
            medians[f"startup {name}"] = await median_ms(start, runs)

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
    return medians


def render(result: ToolsResult) -> list[str]:
    return [
        f"Medians over {result.runs} runs (flattening: {result.runs * 100}). Method: "
        "docs/benchmarks.md#tools.",
        table("what | ms p50", [[name, f"{ms:.2f}"] for name, ms in result.medians_ms.items()]),
    ]


def numbers(result: ToolsResult) -> Mapping[str, object]:
    return {name: round(ms, 3) for name, ms in result.medians_ms.items()}
