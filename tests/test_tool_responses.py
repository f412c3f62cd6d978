"""What a tool's server sends back, and what the model may send it: webhook and MCP
responses are read up to TOOL_RESPONSE_MAX_BYTES and redacted before the model reads
them; a webhook's arguments are only those it declares, and its configured query wins."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from livekit.agents import llm

from agent.config.resolved import Config
from agent.config.tool_files import McpServerSpec
from agent.tools import McpTools, aclose_tools, setup_tools
from agent.wiring import build_tools
from testing.engine import make_engine, settings_for
from testing.polling import until
from testing.servers.mcp_server import McpHttpServer
from testing.servers.openai_server import ScriptedLLMServer, ToolCall, text_reply, tool_reply

TOKEN = "tok-hook-5e6f7a8b9c"
CHUNK = b"z" * 65536


@dataclass
class Hooks:
    url: str = ""
    queries: list[dict[str, list[str]]] = field(default_factory=list)
    streamed: list[int] = field(default_factory=list)
    """Bytes the endless endpoint had written when its client went away."""


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    got = Hooks()

    async def query(request: web.Request) -> web.Response:
        got.queries.append({k: request.query.getall(k) for k in request.query})
        return web.Response(text="ok")

    async def echo(request: web.Request) -> web.Response:
        # a 2xx that echoes the request: headers and query, as some test endpoints do
        return web.json_response({"headers": dict(request.headers), "args": dict(request.query)})

    async def echo_text(request: web.Request) -> web.Response:
        return web.Response(text=f"you sent key={request.query.get('key')} and {TOKEN}")

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        sent = 0
        try:
            while True:  # never ends: only a reader with a limit gets an answer
                await resp.write(CHUNK)
                sent += len(CHUNK)
        except (ConnectionError, asyncio.CancelledError):
            got.streamed.append(sent)
            raise
        return resp

    app = web.Application()
    app.router.add_route("*", "/query", query)
    app.router.add_get("/echo", echo)
    app.router.add_get("/echo-text", echo_text)
    app.router.add_post("/endless", endless)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    got.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield got
    await runner.cleanup()


def webhooks(tmp_path: Path, *tools: dict[str, Any]) -> Path:
    path = tmp_path / "tools.yaml"
    entries = [{"description": f"The {t['name']} hook.", **t} for t in tools]
    path.write_text(yaml.safe_dump({"tools": entries}))
    return path


async def call(
    llm_server: ScriptedLLMServer, config: Config, name: str, args: dict[str, Any]
) -> str:
    """The model calls `name`; returns the tool result the model got."""
    tools = build_tools(config)
    llm_server.script(tool_reply(ToolCall(name, args)), text_reply("Done."))
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="Please.")
    try:
        assert "".join([t async for t in make_engine(llm_server, tool_timeout=10).run(ctx, tools)])
    finally:
        await aclose_tools(tools)
    return str(next(m for m in llm_server.requests[1].messages if m["role"] == "tool")["content"])


ENTITY_SCHEMA = {
    "type": "object",
    "properties": {"entity": {"type": "string"}, "brightness": {"type": "integer"}},
}


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_the_configured_query_is_sent_and_its_pinned_parameters_win(
    llm_server: ScriptedLLMServer,
    hooks: Hooks,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
) -> None:
    monkeypatch.setenv("HA_TOKEN", TOKEN)
    url = hooks.url + "/query?token=${HA_TOKEN}&entity=light.kitchen"
    path = webhooks(tmp_path, {"name": "lights", "url": url, "method": method,
                               "parameters": ENTITY_SCHEMA})  # fmt: skip
    config = settings_for(llm_server, webhook_tools=path)
    output = await call(
        llm_server, config, "lights", {"entity": "lock.front_door", "brightness": 40}
    )
    assert output == "ok"
    # the model named another entity: the one the file pins is what went out
    assert hooks.queries == [{"token": [TOKEN], "entity": ["light.kitchen"], "brightness": ["40"]}]


async def test_arguments_the_tool_does_not_declare_are_refused_and_never_sent(
    llm_server: ScriptedLLMServer, hooks: Hooks, tmp_path: Path
) -> None:
    schema = {"type": "object", "properties": {"room": {"type": "string"}}}
    path = webhooks(tmp_path, {"name": "room_lights", "url": hooks.url + "/query",
                               "method": "GET", "parameters": schema})  # fmt: skip
    config = settings_for(llm_server, webhook_tools=path)
    output = await call(
        llm_server, config, "room_lights", {"room": "kitchen", "entity": "lock.front_door"}
    )
    assert output.startswith("Invalid arguments for room_lights:")
    assert "entity" in output
    assert hooks.queries == []
    # and the model was told so in the schema it was offered
    [offered] = [
        t for t in llm_server.requests[0].body["tools"] if t["function"]["name"] == "room_lights"
    ]
    assert offered["function"]["parameters"]["additionalProperties"] is False


async def test_a_schema_that_allows_more_properties_keeps_them(
    llm_server: ScriptedLLMServer, hooks: Hooks, tmp_path: Path
) -> None:
    schema = {"type": "object", "properties": {}, "additionalProperties": True}
    path = webhooks(tmp_path, {"name": "open_hook", "url": hooks.url + "/query",
                               "method": "GET", "parameters": schema})  # fmt: skip
    output = await call(
        llm_server, settings_for(llm_server, webhook_tools=path), "open_hook", {"any": "x"}
    )
    assert output == "ok"
    assert hooks.queries == [{"any": ["x"]}]


@pytest.mark.timeout(60)
async def test_an_endless_webhook_response_is_read_only_up_to_the_limit(
    llm_server: ScriptedLLMServer, hooks: Hooks, tmp_path: Path
) -> None:
    path = webhooks(tmp_path, {"name": "firehose", "url": hooks.url + "/endless", "timeout": 8})
    config = settings_for(
        llm_server, webhook_tools=path, tool_response_max_bytes=200_000, tool_result_max_chars=500
    )
    output = await call(llm_server, config, "firehose", {})
    # an answer, not "did not answer within 8 seconds": the reader stopped at the limit
    assert output.startswith("zzzz") and output.endswith("[cut]")
    assert len(output) <= 500
    await until(lambda: bool(hooks.streamed), within=10, what="the server to see the close")
    # what was sent before the close: the limit plus what the sockets' buffers held (a few
    # MB on loopback); read to the end of the 8 s timeout, it would have been gigabytes
    assert hooks.streamed[0] < 500 * len(CHUNK)


async def test_a_webhooks_success_body_is_redacted_before_the_model_reads_it(
    llm_server: ScriptedLLMServer, hooks: Hooks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HA_TOKEN", TOKEN)
    path = webhooks(
        tmp_path,
        {"name": "echo", "url": hooks.url + "/echo?key=${HA_TOKEN}", "method": "GET",
         "headers": {"Authorization": "Bearer ${HA_TOKEN}", "X-Api-Key": "${HA_TOKEN}"}},
        {"name": "echo_text", "url": hooks.url + "/echo-text?key=${HA_TOKEN}", "method": "GET"},
    )  # fmt: skip
    config = settings_for(llm_server, webhook_tools=path)
    output = await call(llm_server, config, "echo", {})
    echoed = json.loads(output)
    assert echoed["headers"]["X-Api-Key"] == "[redacted]"
    assert "[redacted]" in echoed["headers"]["Authorization"]
    assert echoed["args"] == {"key": "[redacted]"}
    assert TOKEN not in output
    llm_server.reset()
    text = await call(llm_server, config, "echo_text", {})
    assert text == "you sent key=[redacted] and [redacted]"


# --- MCP -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transport", "json_response"),
    [("http", False), ("http", True), ("sse", False)],
    ids=["streamable-http-sse", "streamable-http-json", "sse"],
)
@pytest.mark.timeout(60)
async def test_an_mcp_answer_over_the_byte_limit_fails_the_call_not_the_process(
    transport: str, json_response: bool
) -> None:
    with McpHttpServer(transport, json_response=json_response) as mcp:  # type: ignore[arg-type]
        spec = McpServerSpec(
            name="weather",
            transport="streamable_http" if transport == "http" else "sse",
            url=mcp.url,
        )
        tools = McpTools([spec], max_response_bytes=4096, retry_initial=0.1, retry_max=0.2)
        await tools.setup()
        try:
            offered = llm.ToolContext([tools]).function_tools
            with pytest.raises(llm.ToolError) as e:
                await offered["big_report"]({})  # 50 kB of text
            assert str(e.value) == "The weather service's answer was too large to read."

            async def small_answer_works() -> bool:
                try:
                    fn = llm.ToolContext([tools]).function_tools["get_forecast"]
                    return bool(await fn({"city": "Oslo"}) == "Sunny and 21 degrees in Oslo.")
                except llm.ToolError:
                    return False  # an SSE session is being made again

            deadline = asyncio.get_running_loop().time() + 20
            while not await small_answer_works():
                assert asyncio.get_running_loop().time() < deadline, "no answer after the cut"
                await asyncio.sleep(0.2)
        finally:
            await tools.aclose()


async def test_an_mcp_result_echoing_a_secret_is_redacted_before_the_model_reads_it(
    llm_server: ScriptedLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = "raw-token-0a1b2c3d4e"  # no "Bearer": only knowing the secret catches it
    monkeypatch.setenv("WEATHER_TOKEN", raw)
    with McpHttpServer("http") as mcp:
        config_path = tmp_path / "mcp.json"
        config_path.write_text(json.dumps({"mcpServers": {"weather": {
            "url": mcp.url, "headers": {"Authorization": "${WEATHER_TOKEN}"}}}}))  # fmt: skip
        config = settings_for(llm_server, mcp_config=config_path)
        tools = build_tools(config)
        await setup_tools(tools)
        try:
            llm_server.script(tool_reply(ToolCall("whoami", {})), text_reply("Ok."))
            ctx = llm.ChatContext()
            ctx.add_message(role="user", content="Who am I?")
            said = "".join([t async for t in make_engine(llm_server).run(ctx, tools)])
        finally:
            await aclose_tools(tools)
    assert said == "Ok."
    outputs = [m["content"] for m in llm_server.requests[1].messages if m["role"] == "tool"]
    assert outputs == ["[redacted]"]
