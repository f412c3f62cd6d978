"""Webhook tools from WEBHOOK_TOOLS against a real HTTP endpoint on 127.0.0.1 (aiohttp)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from livekit.agents import llm

from agent.commands.chat import run_chat
from agent.config.resolved import Config, load_config
from agent.config.settings import ConfigError
from agent.config.tool_files import WebhookSpec
from agent.tools import WebhookToolset, aclose_tools
from agent.tools.read_only import is_read_only
from agent.wiring import build_tools
from testing.engine import make_engine, settings_for
from testing.servers.openai_server import ScriptedLLMServer, ToolCall, text_reply, tool_reply

TOKEN = "tok-hook-9876"


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class HookServer:
    url: str
    received: list[Received] = field(default_factory=list)


@pytest.fixture
async def hooks() -> AsyncIterator[HookServer]:
    server = HookServer(url="")

    async def record(request: web.Request) -> Received:
        body = await request.json() if request.can_read_body else None
        got = Received(
            request.method, request.path, dict(request.query), dict(request.headers), body
        )
        server.received.append(got)
        return got

    async def lights(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"ok": True, "state": "on"})

    async def status(request: web.Request) -> web.Response:
        got = await record(request)
        return web.Response(text=f"The {got.query.get('room')} is 21 degrees.")

    async def slow(request: web.Request) -> web.Response:
        await record(request)
        await asyncio.sleep(5)
        return web.Response(text="too late")

    async def fail(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=500, text="Traceback: db at 10.0.0.7 refused")

    async def reject(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"error": "brightness must be at most 100"}, status=422)

    async def big(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(text="y" * 50_000)

    app = web.Application()
    app.router.add_post("/lights", lights)
    app.router.add_get("/status", status)
    app.router.add_post("/slow", slow)
    app.router.add_post("/fail", fail)
    app.router.add_post("/reject", reject)
    app.router.add_post("/big", big)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"http://127.0.0.1:{port}"
    yield server
    await runner.cleanup()


LIGHTS_SCHEMA = {
    "type": "object",
    "properties": {
        "room": {"type": "string"},
        "brightness": {"type": "integer", "minimum": 0, "maximum": 100},
    },
    "required": ["room"],
}


def hook(name: str, url: str, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "description": f"The {name} hook.", "url": url}
    entry.update(extra)
    return entry


def write_hooks(tmp_path: Path, base: str, **extra_entries: dict[str, Any]) -> Path:
    tools = [
        hook(
            "set_lights",
            base + "/lights",
            method="post",
            parameters=LIGHTS_SCHEMA,
            headers={"Authorization": "Bearer ${HA_TOKEN}", "X-Source": "voice-agent"},
        ),
        hook(
            "room_status",
            base + "/status",
            method="GET",
            parameters={"type": "object", "properties": {"room": {"type": "string"}}},
        ),
        hook("slow_hook", base + "/slow", timeout=0.5),
        hook("failing_hook", base + "/fail"),
        hook("rejecting_hook", base + "/reject"),
        hook("big_hook", base + "/big"),
    ]
    path = tmp_path / "tools.yaml"
    path.write_text(yaml.safe_dump({"tools": tools}))
    return path


@pytest.fixture
def env_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HA_TOKEN", TOKEN)


async def call(
    llm_server: ScriptedLLMServer, settings: Config, name: str, args: dict[str, Any] | str
) -> tuple[str, str]:
    """The model calls `name`; returns (what was said, the tool result the model got)."""
    tools = build_tools(settings)
    llm_server.script(tool_reply(ToolCall(name, args)), text_reply("Done speaking."))
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="Please.")
    try:
        turn = make_engine(llm_server, tool_timeout=3.0).run(ctx, tools)
        said = "".join([t async for t in turn])
    finally:
        await aclose_tools(tools)
    output = next(m for m in llm_server.requests[1].messages if m["role"] == "tool")
    return said, str(output["content"])


@pytest.mark.usefixtures("env_token")
async def test_webhook_gets_the_arguments_as_json_with_env_headers_expanded(
    llm_server: ScriptedLLMServer, hooks: HookServer, tmp_path: Path
) -> None:
    settings = settings_for(llm_server, webhook_tools=write_hooks(tmp_path, hooks.url))
    said, output = await call(
        llm_server, settings, "set_lights", {"room": "kitchen", "brightness": 40}
    )
    [got] = hooks.received
    assert (got.method, got.path) == ("POST", "/lights")
    assert got.body == {"room": "kitchen", "brightness": 40}
    assert got.headers["Authorization"] == f"Bearer {TOKEN}"
    assert got.headers["X-Source"] == "voice-agent"
    assert got.headers["Content-Type"] == "application/json"
    assert output == '{"ok":true,"state":"on"}'
    # the speaking pass does the talking: the raw JSON is never said
    assert said == "Done speaking."
    assert f"Bearer {TOKEN}" in settings.secrets()


@pytest.mark.usefixtures("env_token")
async def test_get_webhook_sends_the_arguments_as_query_and_returns_text(
    llm_server: ScriptedLLMServer, hooks: HookServer, tmp_path: Path
) -> None:
    settings = settings_for(llm_server, webhook_tools=write_hooks(tmp_path, hooks.url))
    _, output = await call(llm_server, settings, "room_status", {"room": "attic"})
    [got] = hooks.received
    assert (got.method, got.query, got.body) == ("GET", {"room": "attic"}, None)
    assert output == "The attic is 21 degrees."


@pytest.mark.usefixtures("env_token")
@pytest.mark.parametrize(
    "args",
    [{"brightness": 40}, {"room": "kitchen", "brightness": 400}, {"room": 7}],
    ids=["missing-required", "out-of-range", "wrong-type"],
)
async def test_arguments_that_break_the_schema_are_refused_without_a_request(
    llm_server: ScriptedLLMServer, hooks: HookServer, tmp_path: Path, args: dict[str, Any]
) -> None:
    settings = settings_for(llm_server, webhook_tools=write_hooks(tmp_path, hooks.url))
    said, output = await call(llm_server, settings, "set_lights", args)
    assert hooks.received == []
    assert output.startswith("Invalid arguments for set_lights:")
    assert said == "Done speaking."


@pytest.mark.usefixtures("env_token")
@pytest.mark.parametrize(
    ("name", "expected", "not_expected"),
    [
        ("slow_hook", "The slow_hook service did not answer within 0.5 seconds.", "too late"),
        ("failing_hook", "The failing_hook service failed; it may work again later.", "10.0.0.7"),
        ("rejecting_hook", "rejected the request: {", "422"),
    ],
    ids=["timeout", "http-500", "http-422"],
)
async def test_failing_webhooks_give_an_error_result_without_internals(
    llm_server: ScriptedLLMServer,
    hooks: HookServer,
    tmp_path: Path,
    name: str,
    expected: str,
    not_expected: str,
) -> None:
    settings = settings_for(llm_server, webhook_tools=write_hooks(tmp_path, hooks.url))
    said, output = await call(llm_server, settings, name, {})
    assert expected in output
    assert not_expected not in output
    assert hooks.url not in output
    assert said == "Done speaking."


@pytest.mark.usefixtures("env_token")
async def test_rejected_call_lets_the_model_read_why(
    llm_server: ScriptedLLMServer, hooks: HookServer, tmp_path: Path
) -> None:
    settings = settings_for(llm_server, webhook_tools=write_hooks(tmp_path, hooks.url))
    _, output = await call(llm_server, settings, "rejecting_hook", {})
    assert "brightness must be at most 100" in output


@pytest.mark.usefixtures("env_token")
async def test_large_webhook_responses_are_cut(
    llm_server: ScriptedLLMServer, hooks: HookServer, tmp_path: Path
) -> None:
    settings = settings_for(
        llm_server, webhook_tools=write_hooks(tmp_path, hooks.url), tool_result_max_chars=500
    )
    _, output = await call(llm_server, settings, "big_hook", {})
    assert len(output) <= 500
    assert output.endswith("[cut]")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "x", "description": "d"}, "WEBHOOK_TOOLS: tools[0].url: required"),
        (hook("x", "ftp://h/x"), "WEBHOOK_TOOLS: tools[0].url: expected an http(s) URL"),
        (hook("x y", "http://h/x"), "WEBHOOK_TOOLS: tools[0].name: use only letters"),
        (hook("x", "http://h/x", method="FETCH"), "WEBHOOK_TOOLS: tools[0].method: "),
        (hook("x", "http://h/x", timeout=0), "WEBHOOK_TOOLS: tools[0].timeout: "),
        (
            hook("x", "http://h/x", parameters={"type": "object", "properties": 3}),
            "WEBHOOK_TOOLS: tools[0].parameters: not a valid JSON schema",
        ),
        (
            hook("x", "http://h/x", headers={"Authorization": "Bearer sk-abc123"}),
            "WEBHOOK_TOOLS: tools[0].headers.Authorization: write credentials as a ${VAR}",
        ),
        (hook("x", "http://h/x", colour="red"), "WEBHOOK_TOOLS: tools[0].colour: unknown key"),
    ],
    ids=["no-url", "bad-url", "bad-name", "bad-method", "bad-timeout", "bad-schema",
         "literal-secret", "unknown-key"],
)  # fmt: skip
def test_a_bad_webhook_entry_stops_start_up_with_one_line(
    tmp_path: Path, entry: dict[str, Any], message: str
) -> None:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps({"tools": [entry]}))
    with pytest.raises(ConfigError) as e:
        load_config(llm_base_url="http://127.0.0.1:1/v1", llm_model="m", webhook_tools=path)
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)
    assert "sk-abc123" not in str(e.value)


@pytest.mark.usefixtures("env_token")
async def test_chat_says_the_filler_for_a_slow_webhook_but_keeps_it_out_of_history(
    llm_server: ScriptedLLMServer, hooks: HookServer, tmp_path: Path
) -> None:
    path = tmp_path / "tools.yaml"
    path.write_text(yaml.safe_dump({"tools": [hook("slow_hook", hooks.url + "/slow", timeout=1)]}))
    settings = settings_for(
        llm_server,
        webhook_tools=path,
        tool_filler="Hang on.",
        tool_filler_delay=0.2,
        tool_timeout=3,
    )
    llm_server.script(
        tool_reply(ToolCall("slow_hook", {}), text="Let me see."),
        text_reply("It timed out."),
        text_reply("You're welcome."),
    )
    stdout = io.StringIO()
    await run_chat(settings, stdin=io.StringIO("Do it.\nThanks.\n"), stdout=stdout)
    assert stdout.getvalue() == "Let me see. Hang on. It timed out.\nYou're welcome.\n"
    later = json.dumps(llm_server.requests[2].messages)
    assert "Hang on" not in later
    assert "Let me see." in later and "It timed out." in later


async def test_read_only_webhooks_may_run_on_a_guessed_transcript(tmp_path: Path) -> None:
    specs = [
        WebhookSpec(name="get_lights", description="Read.", url="http://x/1", read_only=True),
        WebhookSpec(name="set_lights", description="Write.", url="http://x/2"),
    ]
    toolset = WebhookToolset(specs)
    try:
        offered = llm.ToolContext([toolset]).function_tools
    finally:
        await toolset.aclose()
    assert is_read_only(offered["get_lights"])
    assert not is_read_only(offered["set_lights"])  # the default: waits for the turn's end
