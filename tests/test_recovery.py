"""Recovery paths: an MCP server that drops mid-session and comes back is reconnected,
and its tools work again in the same session."""

from __future__ import annotations

import asyncio

import pytest
from livekit.agents import llm

from agent.config.tool_files import McpServerSpec
from agent.engine.turns import TurnEngine
from agent.tools import McpTools
from testing.engine import APOLOGY, FALLBACK, make_engine
from testing.servers.mcp_server import McpHttpServer
from testing.servers.openai_server import ScriptedLLMServer, ToolCall, text_reply, tool_reply

pytestmark = pytest.mark.timeout(120)


class Session:
    """A text session as `chat` keeps it: one engine, one growing history."""

    def __init__(self, engine: TurnEngine, tools: list[llm.Tool | llm.Toolset]) -> None:
        self.engine, self.tools = engine, tools
        self.history = llm.ChatContext()
        self.history.add_message(role="system", content="You are a test assistant.")

    async def turn(self, user: str) -> str:
        self.history.add_message(role="user", content=user)
        turn = self.engine.run(self.history, self.tools)
        said = "".join([t async for t in turn])
        self.history.items.extend(turn.new_items)
        self.history.add_message(role="assistant", content=turn.text)
        return said


def forecast_turn(answer: str) -> tuple[object, object]:
    return tool_reply(ToolCall("mcp_get_forecast", {"city": "Oslo"})), text_reply(answer)


async def test_an_mcp_server_that_drops_mid_session_is_reconnected_and_used_again(
    llm_server: ScriptedLLMServer,
) -> None:
    first = McpHttpServer("http").start()
    spec = McpServerSpec(name="mcp", transport="streamable_http", url=first.url)
    # the retry interval is injected: the reconnect happens within the test
    tools = McpTools([spec], retry_initial=0.2, retry_max=0.5, reserved_names=["get_forecast"])
    restarted: McpHttpServer | None = None
    try:
        await tools.setup()
        session = Session(make_engine(llm_server, tool_timeout=5.0), [tools])
        llm_server.script(*forecast_turn("Sunny in Oslo."))
        assert await session.turn("Weather in Oslo?") == "Sunny in Oslo."

        first.stop()
        llm_server.script(*forecast_turn("The weather service is down."))
        assert await session.turn("And now?") == "The weather service is down."
        down_result = [m for m in llm_server.requests[-1].messages if m["role"] == "tool"][-1]
        assert "unavailable" in down_result["content"] or "failed" in down_result["content"]

        restarted = McpHttpServer("http", port=first.port).start()
        deadline = asyncio.get_running_loop().time() + 60
        while tools.connected != ["mcp"]:
            assert asyncio.get_running_loop().time() < deadline, "never reconnected"
            await asyncio.sleep(0.1)

        llm_server.script(*forecast_turn("Sunny again in Oslo."))
        assert await session.turn("And now?") == "Sunny again in Oslo."
        last = llm_server.requests[-1].messages
        results = [m["content"] for m in last if m["role"] == "tool"]
        assert results[0] == "Sunny and 21 degrees in Oslo."
        assert results[-1] == "Sunny and 21 degrees in Oslo."
        said = [m["content"] for m in last if m["role"] == "assistant" and m.get("content")]
        assert said == ["Sunny in Oslo.", "The weather service is down."]
        assert APOLOGY not in str(last) and FALLBACK not in str(last)
        ids = [c["id"] for m in last for c in m.get("tool_calls") or []]
        assert len(ids) == len(set(ids)) == 3
    finally:
        await tools.aclose()
        if restarted is not None:
            restarted.stop()
