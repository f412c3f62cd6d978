"""Fallback LLM backends from env, retries only before speech, and cool-downs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from livekit.agents import llm

from agent.config.resolved import load_config
from agent.engine.turns import TurnEngine
from agent.tools import get_current_time
from agent.wiring import build_engine, build_llm
from providers import BackendCoolingDown, Cooldown
from testing.cli import chat_env, chat_ok, run_cli
from testing.clock import ManualClock
from testing.polling import until
from testing.servers.openai_server import Cut, Reply, ScriptedLLMServer, Status, Text, text_reply


@pytest.fixture
def backup_server() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer(default=text_reply("Backup here.")) as server:
        yield server


def fallbacks_env(backup: ScriptedLLMServer, **extra: str) -> dict[str, str]:
    entry = {"provider": "openai-compatible", "base_url": backup.base_url, "model": "backup-model"}
    return {"LLM_FALLBACKS": json.dumps([entry | extra])}


def test_turn_moves_to_the_fallback_backend_when_the_primary_fails_before_speaking(
    llm_server: ScriptedLLMServer, backup_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    llm_server.script(Reply.of(Status(503)))
    primary_key, backup_key = "sk-primary-canary-1", "sk-backup-canary-2"
    env = chat_env(
        llm_server,
        LLM_API_KEY=primary_key,
        **fallbacks_env(backup_server, api_key=backup_key),
    )
    result = chat_ok(env, cwd=tmp_path)
    assert result.stdout == "Backup here.\n"
    assert backup_server.requests[0].body["model"] == "backup-model"
    assert backup_server.requests[0].headers["authorization"] == f"Bearer {backup_key}"
    # the switch is logged with the failing backend's name and URL, never a key
    assert f"openai-compatible:test-model@{llm_server.base_url}" in result.stderr
    assert "switching to next LLM" in result.stderr
    for key in (primary_key, backup_key):
        assert key not in result.stdout + result.stderr


def test_failure_after_words_were_said_does_not_repeat_them_on_the_fallback(
    llm_server: ScriptedLLMServer, backup_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    llm_server.script(Reply.of(Text("The answer is"), Cut()))
    env = chat_env(llm_server, AGENT_APOLOGY="Sorry.", **fallbacks_env(backup_server))
    result = run_cli(["chat"], env=env, stdin="Hello\n", cwd=tmp_path)
    assert result.stdout == "The answer is Sorry.\n"
    assert backup_server.requests == []


def test_all_backends_down_ends_in_the_apology(tmp_path: Path) -> None:
    env = chat_env(
        LLM_BASE_URL="http://127.0.0.1:9/v1",
        LLM_MODEL="m",
        AGENT_APOLOGY="Sorry.",
        LLM_FALLBACKS=json.dumps([{"base_url": "http://127.0.0.1:10/v1", "model": "m"}]),
    )
    result = run_cli(["chat"], env=env, stdin="Hello\n", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == "Sorry.\n"


def engine_with_fallback(
    primary: ScriptedLLMServer,
    backup: ScriptedLLMServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    clock: Callable[[], float] = time.monotonic,
    **env: str,
) -> TurnEngine:
    monkeypatch.chdir(tmp_path)
    for name, value in {
        **chat_env(primary),
        **fallbacks_env(backup),
        "BUILTIN_TOOLS": "false",
        **env,
    }.items():
        monkeypatch.setenv(name, value)
    config = load_config()
    return build_engine(config.settings, build_llm(config, clock=clock))


async def say(engine: TurnEngine) -> str:
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="Hi")
    return "".join([t async for t in engine.run(ctx)])


@pytest.mark.timeout(60)
async def test_a_failing_primary_is_skipped_while_cooling_down_and_comes_back(
    llm_server: ScriptedLLMServer,
    backup_server: ScriptedLLMServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    llm_server.default = Reply.of(Status(500))
    clock = ManualClock()
    engine = engine_with_fallback(
        llm_server, backup_server, monkeypatch, tmp_path, clock, LLM_COOLDOWN="30"
    )
    recovered: list[llm.AvailabilityChangedEvent] = []
    engine.llm.on("llm_availability_changed", recovered.append)
    assert await say(engine) == "Backup here."
    # livekit's background recovery probe fails too: 2 failures in a row open the cool-down
    await until(lambda: len(llm_server.requests) == 2, within=10, what="the recovery probe")

    for _ in range(5):  # cooling down: the probes each turn starts send no request
        assert await say(engine) == "Backup here."

    llm_server.default = text_reply("Primary is back.")
    clock.advance(30.1)  # the period is over: the next probe is a real request again
    assert await say(engine) == "Backup here."  # this turn's probe finds it healthy
    await until(
        lambda: any(e.available for e in recovered), within=10, what="the primary recovering"
    )
    assert await say(engine) == "Primary is back."
    # two failures, one probe after the period, one turn: nothing while it cooled down
    assert len(llm_server.requests) == 4
    await engine.llm.aclose()


def test_cooldown_opens_after_the_threshold_and_closes_after_the_period() -> None:
    clock = ManualClock()
    cooldown = Cooldown(seconds=10, threshold=2, clock=clock)
    cooldown.check()
    assert cooldown.record_failure() is False
    cooldown.check()  # one failure is not a pattern
    assert cooldown.record_failure() is True
    with pytest.raises(BackendCoolingDown) as raised:
        cooldown.check()
    assert raised.value.retryable is False
    clock.advance(10.1)
    cooldown.check()
    cooldown.record_success()
    assert cooldown.record_failure() is False  # the count started again


async def test_a_primary_refusing_tools_answers_without_them_rather_than_failing_over(
    llm_server: ScriptedLLMServer,
    backup_server: ScriptedLLMServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # vLLM without its tool flags: a 400 for any request with tools. That is not an outage.
    llm_server.script(Reply.of(Status(400)), text_reply("Primary, without tools."))
    engine = engine_with_fallback(llm_server, backup_server, monkeypatch, tmp_path)
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="Hi")
    said = "".join([t async for t in engine.run(ctx, [get_current_time])])
    assert said == "Primary, without tools."
    assert "tools" in llm_server.requests[0].body
    assert "tools" not in llm_server.requests[1].body
    assert backup_server.requests == []
    await engine.llm.aclose()


def test_when_every_backend_is_cooling_down_they_are_tried_anyway() -> None:
    clock = ManualClock()
    first, second = (Cooldown(seconds=10, threshold=1, clock=clock) for _ in "ab")
    first.peers = second.peers = [first, second]
    first.record_failure()
    with pytest.raises(BackendCoolingDown):
        first.check()  # the other one is fine: skip this one
    second.record_failure()
    first.check()  # nobody is fine: asking beats an apology without a request
    second.check()
