"""MCP servers from MCP_CONFIG: real FastMCP servers over streamable HTTP, SSE and stdio,
called by the scripted LLM through the turn engine."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import llm

from agent.config.resolved import Config, load_config
from agent.config.settings import ConfigError
from agent.config.tool_files import McpServerSpec
from agent.tools import McpTools, aclose_tools, setup_tools
from agent.tools.read_only import is_read_only
from agent.wiring import build_tools
from testing.cli import chat_env, chat_ok
from testing.engine import make_engine, settings_for
from testing.polling import until
from testing.servers.mcp_server import SCRIPT, McpHttpServer
from testing.servers.openai_server import ScriptedLLMServer, ToolCall, text_reply, tool_reply

STDIO_ENV = {"FASTMCP_LOG_LEVEL": "WARNING", "FASTMCP_SHOW_SERVER_BANNER": "false"}


def stdio_entry(name: str = "weather") -> dict[str, Any]:
    return {"command": sys.executable, "args": [str(SCRIPT), name], "env": STDIO_ENV}


def write_config(tmp_path: Path, servers: dict[str, Any]) -> Path:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": servers}))
    return path


@asynccontextmanager
async def connected(settings: Config) -> AsyncIterator[list[llm.Tool | llm.Toolset]]:
    tools = build_tools(settings)
    await setup_tools(tools)
    try:
        yield tools
    finally:
        await aclose_tools(tools)


def user_ctx(text: str = "What's the weather in Oslo?") -> llm.ChatContext:
    ctx = llm.ChatContext()
    ctx.add_message(role="system", content="You are a test assistant.")
    ctx.add_message(role="user", content=text)
    return ctx


async def say(
    server: ScriptedLLMServer, tools: Sequence[llm.Tool | llm.Toolset], **opts: Any
) -> str:
    turn = make_engine(server, **opts).run(user_ctx(), tools)
    return "".join([t async for t in turn])


def tool_outputs(server: ScriptedLLMServer, request: int = 1) -> list[str]:
    return [m["content"] for m in server.requests[request].messages if m["role"] == "tool"]


def names(tools: Sequence[llm.Tool | llm.Toolset]) -> list[str]:
    return list(llm.ToolContext(list(tools)).function_tools)


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_http_mcp_tool_result_reaches_the_speaking_pass(
    llm_server: ScriptedLLMServer, tmp_path: Path, transport: str
) -> None:
    with McpHttpServer(transport) as mcp:  # type: ignore[arg-type]
        settings = settings_for(
            llm_server, mcp_config=write_config(tmp_path, {"weather": {"url": mcp.url}})
        )
        async with connected(settings) as tools:
            assert "get_forecast" in names(tools)
            llm_server.script(
                tool_reply(ToolCall("get_forecast", {"city": "Oslo"})), text_reply("Sunny.")
            )
            said = await say(llm_server, tools)
    assert said == "Sunny."
    assert "get_forecast" in llm_server.requests[0].tool_names
    # the result goes to the model as the tool's text, not MCP's content JSON
    assert tool_outputs(llm_server) == ["Sunny and 21 degrees in Oslo."]


async def test_stdio_mcp_tool_result_reaches_the_speaking_pass(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, {"local": stdio_entry()})
    # a Python process start: seconds on a busy machine; what is tested is the result
    settings = settings_for(llm_server, mcp_config=config, mcp_connect_timeout=60)
    async with connected(settings) as tools:
        llm_server.script(
            tool_reply(ToolCall("get_forecast", {"city": "Lima"})), text_reply("Sunny in Lima.")
        )
        said = await say(llm_server, tools)
    assert said == "Sunny in Lima."
    assert tool_outputs(llm_server) == ["Sunny and 21 degrees in Lima."]


async def test_same_tool_names_from_two_servers_get_the_later_servers_prefix(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    with McpHttpServer("http") as first, McpHttpServer("http", name="backup") as second:
        config = write_config(
            tmp_path, {"weather": {"url": first.url}, "backup": {"url": second.url}}
        )
        async with connected(settings_for(llm_server, mcp_config=config)) as tools:
            offered = names(tools)
            llm_server.script(
                tool_reply(ToolCall("backup_get_forecast", {"city": "Rome"})),
                text_reply("Sunny in Rome."),
            )
            said = await say(llm_server, tools)
    assert {"get_forecast", "backup_get_forecast", "whoami", "backup_whoami"} <= set(offered)
    assert len(offered) == len(set(offered))
    assert said == "Sunny in Rome."
    assert tool_outputs(llm_server) == ["Sunny and 21 degrees in Rome."]


async def test_mcp_tool_named_like_a_builtin_tool_gets_the_server_prefix(
    llm_server: ScriptedLLMServer,
) -> None:
    with McpHttpServer("http") as mcp:
        spec = McpServerSpec(name="weather", transport="streamable_http", url=mcp.url)
        tools = McpTools([spec], reserved_names=["get_forecast"])
        await tools.setup()
        try:
            offered = names([tools])
        finally:
            await tools.aclose()
    assert "weather_get_forecast" in offered
    assert "get_forecast" not in offered


async def test_headers_reach_the_server_with_their_env_references_expanded(
    llm_server: ScriptedLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEATHER_TOKEN", "tok-s3cret-123")
    with McpHttpServer("http") as mcp:
        config = write_config(
            tmp_path,
            {"weather": {"url": mcp.url, "headers": {"Authorization": "Bearer ${WEATHER_TOKEN}"}}},
        )
        settings = settings_for(llm_server, mcp_config=config)
        async with connected(settings) as tools:
            llm_server.script(tool_reply(ToolCall("whoami", {})), text_reply("You are you."))
            await say(llm_server, tools)
    # the server got the header, expanded: its echo of it is the registered secret, whole
    # (and so redacted before the model reads it, as from every log line)
    assert tool_outputs(llm_server) == ["[redacted]"]
    assert "Bearer tok-s3cret-123" in settings.secrets()


def test_a_literal_credential_in_the_mcp_config_stops_start_up(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, {"weather": {"url": "http://127.0.0.1:1/mcp", "headers": {"X-Api-Key": "abc"}}}
    )
    with pytest.raises(ConfigError) as e:
        load_config(llm_base_url="http://127.0.0.1:1/v1", llm_model="m", mcp_config=config)
    assert str(e.value).startswith("MCP_CONFIG: mcpServers.weather.headers.X-Api-Key:")
    assert "abc" not in str(e.value)


def test_an_unset_env_reference_stops_start_up_naming_it(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        {"w": {"url": "http://127.0.0.1:1/mcp", "headers": {"Authorization": "${NOPE_UNSET}"}}},
    )
    with pytest.raises(ConfigError) as e:
        load_config(llm_base_url="http://127.0.0.1:1/v1", llm_model="m", mcp_config=config)
    assert str(e.value) == (
        "MCP_CONFIG: mcpServers.w.headers.Authorization references ${NOPE_UNSET}, which is not set"
    )


async def test_server_down_at_start_up_still_gives_a_spoken_turn(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, {"weather": {"url": "http://127.0.0.1:9/mcp"}})
    async with connected(settings_for(llm_server, mcp_config=config)) as tools:
        assert "get_forecast" not in names(tools)
        llm_server.script(
            tool_reply(ToolCall("get_forecast", {"city": "Oslo"})),
            text_reply("I can't check the weather right now."),
        )
        said = await say(llm_server, tools)
    assert said == "I can't check the weather right now."
    assert tool_outputs(llm_server)[0].startswith("Unknown function: get_forecast")


async def test_server_down_at_start_up_is_retried_and_its_tools_appear_later(
    llm_server: ScriptedLLMServer,
) -> None:
    mcp = McpHttpServer("http")  # bound, not yet serving: connections are refused
    spec = McpServerSpec(name="weather", transport="streamable_http", url=mcp.url)
    tools = McpTools([spec], retry_initial=0.1, retry_max=0.2)
    try:
        await tools.setup()
        assert names([tools]) == []
        mcp.start()
        await until(lambda: bool(names([tools])), within=10, what="the reconnected tools")
        assert "get_forecast" in names([tools])
        llm_server.script(tool_reply(ToolCall("get_forecast", {"city": "Oslo"})), text_reply("Ok."))
        await say(llm_server, [tools])
        assert tool_outputs(llm_server) == ["Sunny and 21 degrees in Oslo."]
    finally:
        await tools.aclose()
        mcp.stop()


async def test_server_gone_mid_session_gives_an_error_result_the_model_speaks_about(
    llm_server: ScriptedLLMServer,
) -> None:
    mcp = McpHttpServer("http").start()
    spec = McpServerSpec(name="weather", transport="streamable_http", url=mcp.url)
    tools = McpTools([spec], retry_initial=30, retry_max=30)
    try:
        await tools.setup()
        mcp.stop()
        llm_server.script(
            tool_reply(ToolCall("get_forecast", {"city": "Oslo"})),
            text_reply("The weather service is down."),
        )
        said = await say(llm_server, [tools], tool_timeout=5.0)
    finally:
        await tools.aclose()
    assert said == "The weather service is down."
    output = tool_outputs(llm_server)[0]
    assert "weather" in output
    assert "unavailable" in output or "failed" in output


async def test_large_mcp_results_are_cut_before_they_reach_the_model(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    with McpHttpServer("http") as mcp:
        config = write_config(tmp_path, {"weather": {"url": mcp.url}})
        settings = settings_for(llm_server, mcp_config=config, tool_result_max_chars=1000)
        async with connected(settings) as tools:
            llm_server.script(tool_reply(ToolCall("big_report", {})), text_reply("Long."))
            await say(llm_server, tools)
    output = tool_outputs(llm_server)[0]
    assert len(output) <= 1000
    assert output.endswith("[cut]")


def test_chat_cli_answers_with_a_stdio_mcp_tool(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, {"local": stdio_entry()})
    llm_server.script(
        tool_reply(ToolCall("get_forecast", {"city": "Oslo"})), text_reply("Sunny in Oslo.")
    )
    env = chat_env(llm_server, MCP_CONFIG=str(config), MCP_CONNECT_TIMEOUT="60")
    result = chat_ok(env, cwd=tmp_path, stdin="Weather in Oslo?\n")
    assert result.stdout == "Sunny in Oslo.\n"
    assert tool_outputs(llm_server) == ["Sunny and 21 degrees in Oslo."]


async def test_tools_the_server_annotates_read_only_may_run_on_a_guessed_transcript() -> None:
    with McpHttpServer("http") as mcp:
        spec = McpServerSpec(name="weather", transport="streamable_http", url=mcp.url)
        tools = McpTools([spec])
        await tools.setup()
        try:
            offered = llm.ToolContext([tools]).function_tools
        finally:
            await tools.aclose()
    assert is_read_only(offered["get_forecast"])  # readOnlyHint: true
    assert not is_read_only(offered["wait"])  # no annotation: it waits for the turn's end
