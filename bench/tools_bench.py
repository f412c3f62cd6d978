"""How much MCP tool discovery adds to session start-up and to a turn.

    python -m bench.tools_bench [--runs 10]

Start-up: `setup_tools()` (connect + initialize + tools/list) per transport, against a
FastMCP server on 127.0.0.1 (stdio: a child process started per session), and for an
unreachable server. Per turn: the engine's tool flattening with the MCP toolset, a
whole text-only turn with and without 4 MCP tools offered (scripted LLM server), and
one MCP tool call vs. one in-process tool call. Medians in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

from livekit.agents import llm

from agent.logging import configure_logging
from agent.tools import McpTools, aclose_tools, get_current_time, setup_tools
from agent.tools.specs import McpServerSpec
from tests.conftest import make_engine
from tests.servers.mcp_server import SCRIPT, McpHttpServer
from tests.servers.openai_server import ScriptedLLMServer, ToolCall, text_reply, tool_reply


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


async def main(runs: int) -> None:
    configure_logging(level="critical")
    logging.disable(logging.CRITICAL)
    results: dict[str, float] = {}
    with McpHttpServer("http") as http, McpHttpServer("sse") as sse, ScriptedLLMServer() as srv:
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
            results[f"startup {name}, first in process"] = await median_ms(
                functools.partial(startup, spec), 1
            )
            results[f"startup {name}"] = await median_ms(functools.partial(startup, spec), runs)

        mcp = McpTools([specs["streamable_http"]])
        await mcp.setup()
        toolset: list[llm.Tool | llm.Toolset] = [get_current_time, mcp]
        results["flatten tools per turn (5 tools)"] = await median_ms(
            lambda: _flatten(toolset), runs * 100
        )
        engine = make_engine(srv, tool_timeout=5.0)

        async def turn(tools: list[llm.Tool | llm.Toolset], *replies: object) -> None:
            srv.script(*replies)  # type: ignore[arg-type]
            ctx = llm.ChatContext()
            ctx.add_message(role="user", content="hi")
            async for _ in engine.run(ctx, tools):
                pass

        results["turn, no tools"] = await median_ms(lambda: turn([], text_reply("Hi.")), runs)
        results["turn, 5 tools offered"] = await median_ms(
            lambda: turn(toolset, text_reply("Hi.")), runs
        )
        results["turn, in-process tool call"] = await median_ms(
            lambda: turn(toolset, tool_reply(ToolCall("get_current_time")), text_reply("Ok.")),
            runs,
        )
        results["turn, MCP tool call (http)"] = await median_ms(
            lambda: turn(
                toolset, tool_reply(ToolCall("get_forecast", {"city": "Oslo"})), text_reply("Ok.")
            ),
            runs,
        )
        await mcp.aclose()
    for name, ms in results.items():
        print(f"{name:42s} {ms:>9.2f} ms")


async def _flatten(tools: list[llm.Tool | llm.Toolset]) -> None:
    llm.ToolContext(tools).flatten()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    asyncio.run(main(parser.parse_args().runs))
