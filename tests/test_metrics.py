"""What a turn adds to the Prometheus metrics, read back from the registry; that job
processes' numbers reach `/metrics` is tests/voice/test_scale_worker.py's job."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from livekit.agents import llm
from livekit.agents.llm import function_tool
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from agent.config.resolved import Config
from agent.ops.metrics import backend_label, record_turn
from agent.worker.observability import MetricsRoute
from testing.engine import APOLOGY, make_engine, settings_for
from testing.polling import free_port
from testing.servers.openai_server import (
    Reply,
    ScriptedLLMServer,
    Status,
    ToolCall,
    text_reply,
    tool_reply,
)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def every_label_value() -> list[str]:
    return [
        v
        for family in REGISTRY.collect()
        if family.name.startswith("voice_agent")
        for s in family.samples
        for v in s.labels.values()
    ]


@function_tool
async def lookup_order(order_id: int) -> str:
    """Look up an order.

    Args:
        order_id: The order number.
    """
    return f"Order {order_id} ships tomorrow."


async def say(engine_server: ScriptedLLMServer | str, *replies: Reply, **kw: object) -> str:
    engine = make_engine(engine_server, **kw)  # type: ignore[arg-type]
    engine.on_turn_finished.append(record_turn)
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="Where is my order?")
    turn = engine.run(ctx, [lookup_order])
    return "".join([t async for t in turn])


@function_tool
async def slow_lookup() -> str:
    """Look something up slowly."""
    await asyncio.sleep(0.3)
    return "Found it."


async def test_a_filler_said_while_a_slow_tool_runs_is_counted(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(tool_reply(ToolCall("slow_lookup", id="s")), text_reply("Found it."))
    engine = make_engine(llm_server, filler="One moment.", filler_delay=0.05)
    engine.on_turn_finished.append(record_turn)
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="Look it up.")
    before = sample("voice_agent_filler_total")
    turn = engine.run(ctx, [slow_lookup])
    said = "".join([t async for t in turn])
    assert said.startswith("One moment.")
    assert sample("voice_agent_filler_total") == before + 1


def test_backend_label_drops_url_credentials() -> None:
    assert (
        backend_label("vllm:qwen@https://bob:s3cret@llm.example.com/v1")
        == "vllm:qwen@https://llm.example.com/v1"
    )
    assert backend_label("groq:llama@https://api.groq.com/openai/v1") == (
        "groq:llama@https://api.groq.com/openai/v1"
    )


async def test_a_failed_turn_counts_an_apology_and_a_backend_error_without_credentials(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(Reply.of(Status(500)))
    url = llm_server.base_url.replace("http://", "http://bob:s3cret@")
    before = sample("voice_agent_turns_total", outcome="apology")
    assert await say(url) == APOLOGY
    assert sample("voice_agent_turns_total", outcome="apology") == before + 1
    label = f"openai-compatible:test-model@{llm_server.base_url}"
    assert sample("voice_agent_backend_errors_total", kind="llm", backend=label) >= 1
    assert not [v for v in every_label_value() if "s3cret" in v]


async def test_tool_durations_are_labelled_by_tool_and_made_up_tools_share_one_label(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(
        tool_reply(ToolCall("lookup_order", {"order_id": 1}, id="a"), ToolCall("x" * 40, id="b")),
        text_reply("It ships tomorrow."),
    )
    ok = sample("voice_agent_tool_duration_seconds_count", tool="lookup_order", outcome="ok")
    unknown = sample("voice_agent_tool_duration_seconds_count", tool="unknown", outcome="error")
    answered = sample("voice_agent_turns_total", outcome="answered")
    assert await say(llm_server) == "It ships tomorrow."
    assert (
        sample("voice_agent_tool_duration_seconds_count", tool="lookup_order", outcome="ok")
        == ok + 1
    )
    assert (
        sample("voice_agent_tool_duration_seconds_count", tool="unknown", outcome="error")
        == unknown + 1
    )
    assert sample("voice_agent_turns_total", outcome="answered") == answered + 1
    assert sample("voice_agent_llm_ttft_seconds_count", pass_kind="speak") >= 1


async def test_a_failing_turn_hook_does_not_cost_the_turn_its_words(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(text_reply("Here it is."))
    engine = make_engine(llm_server)
    seen: list[str] = []

    def broken(turn: object) -> None:
        raise RuntimeError("metrics backend down")

    engine.on_turn_finished.extend([broken, lambda turn: seen.append(turn.stats.outcome)])
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="Hi?")
    turn = engine.run(ctx)
    assert "".join([t async for t in turn]) == "Here it is."
    assert seen == ["answered"]  # the hooks after it still ran


async def test_the_metrics_route_shows_known_series_before_any_turn(
    llm_server: ScriptedLLMServer,
) -> None:
    """In one process (no job processes): the route over HTTP, before a turn was taken."""
    app = web.Application()
    app.router.add_get("/metrics", MetricsRoute(lambda: settings_for(llm_server)))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            assert response.status == 200
            text = await response.text()
    finally:
        await runner.cleanup()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    backend = f"openai-compatible:test-model@{llm_server.base_url}"
    for counter in ("voice_agent_backend_errors_total", "voice_agent_fallbacks_total"):
        assert samples[(counter, (("backend", backend), ("kind", "llm")))] == 0
    for outcome in ("answered", "fallback", "apology", "cancelled"):
        assert ("voice_agent_turns_total", (("outcome", outcome),)) in samples
    for kind in ("tools", "speak", "speak-plain"):
        assert ("voice_agent_llm_ttft_seconds_count", (("pass_kind", kind),)) in samples
    # the built-in tools are on by default: each has its series
    key = (
        "voice_agent_tool_duration_seconds_count",
        (("outcome", "ok"), ("tool", "get_current_time")),
    )
    assert key in samples
    assert not llm_server.requests
    assert "_created" not in text


async def test_a_failed_declaration_is_tried_again_and_a_removed_folder_loses_no_scrape(
    llm_server: ScriptedLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first scrape's declaration fails (the configuration can't be built yet): that
    scrape is an error, the next one declares. A multiprocess folder removed under the
    worker costs the job processes' series, not the scrape."""
    attempts: list[int] = []

    def config() -> Config:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("not yet")
        return settings_for(llm_server)

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "removed"))
    app = web.Application()
    app.router.add_get("/metrics", MetricsRoute(config))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as first:
                assert first.status == 500
            async with http.get(f"http://127.0.0.1:{port}/metrics") as second:
                assert second.status == 200
                text = await second.text()
    finally:
        await runner.cleanup()
    backend = f"openai-compatible:test-model@{llm_server.base_url}"
    assert f'voice_agent_fallbacks_total{{backend="{backend}",kind="llm"}} 0.0' in text
    assert len(attempts) == 2
