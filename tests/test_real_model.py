"""A real small tool-calling model (Qwen2.5-Coder-1.5B on llama.cpp) through the engine.

Scripted servers say exactly what a test chose; this one says what a small model says,
under the model's own chat template (calls written as a ```json fence in the content) and
under one where llama.cpp parses them (`<tool_call>`). Every turn must end in words: the
real time when the clock is needed, never a tool call, a thought or a parser's message.
Sampling is greedy, so a run repeats; the servers are shared by the whole session and the
cases are few, to keep CI's time (see docs/real-model.md for timings and call rates).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from livekit.agents import AgentSession, llm
from livekit.agents.llm import function_tool

from agent.config.settings import DEFAULT_INSTRUCTIONS
from agent.engine.turns import Turn, TurnEngine
from agent.tools import get_current_time
from agent.voice.assistant import Assistant
from testing.chat_turns import APOLOGY
from testing.cli import chat_env, run_cli
from testing.engine import make_engine
from testing.real_model import model_path
from testing.servers.llama_server import OWN_TEMPLATE, TOOL_CALL_TEMPLATE, LlamaServer

pytestmark = pytest.mark.xdist_group("real_llm")

TEMPLATES = ["own", "tool-calls"]
TIMEOUT = 300  # seconds a turn may take on a loaded 2-core machine (a few seconds idle)
NOT_WORDS = ("{", "}", "`", "<tool_call>", "<tools>", "</", "<think", "[TOOL_CALLS]")
"""Marks of a tool call, a fence or a thought: none may be said."""


@pytest.fixture(scope="session")
def own_template_server() -> Iterator[LlamaServer]:
    with LlamaServer(model_path(), chat_template=OWN_TEMPLATE) as server:
        yield server


@pytest.fixture(scope="session")
def tool_calls_server() -> Iterator[LlamaServer]:
    with LlamaServer(model_path(), chat_template=TOOL_CALL_TEMPLATE) as server:
        yield server


def server_for(request: pytest.FixtureRequest, template: str) -> LlamaServer:
    """The session's server for `template` (started by the first test that needs it)."""
    name = "own_template_server" if template == "own" else "tool_calls_server"
    server = request.getfixturevalue(name)
    assert isinstance(server, LlamaServer)
    return server


@function_tool
async def get_weather(city: str) -> str:
    """Get the current weather in a city.

    Args:
        city: The city name.
    """
    return f"Sunny and 21 degrees Celsius in {city}."


def engine_for(server: LlamaServer) -> TurnEngine:
    return make_engine(server.base_url, timeout=TIMEOUT)


async def speak(
    server: LlamaServer,
    question: str,
    tools: list[llm.Tool],
    *,
    instructions: str = DEFAULT_INSTRUCTIONS,
) -> tuple[str, Turn]:
    ctx = llm.ChatContext()
    ctx.add_message(role="system", content=instructions)
    ctx.add_message(role="user", content=question)
    turn = engine_for(server).run(ctx, tools)
    said = "".join([text async for text in turn])
    return said, turn


def assert_only_words(said: str) -> None:
    assert said.strip(), "the turn ended in silence"
    for mark in NOT_WORDS:
        assert mark not in said, f"{mark!r} was said: {said!r}"
    assert "does not match" not in said and "peg" not in said, said


def says_the_time(said: str, started: datetime) -> bool:
    """Whether `said` holds the time in Tokyo (14:05 or 2:05) at some minute between
    `started` and now."""
    moment, now = started.astimezone(ZoneInfo("Asia/Tokyo")), datetime.now(UTC)
    while moment <= now + timedelta(minutes=1):
        if moment.strftime("%H:%M") in said or f"{(moment.hour - 1) % 12 + 1}:{moment:%M}" in said:
            return True
        moment += timedelta(minutes=1)
    return False


# --- 1. the clock question gets the real time, in words ----------------------------


@pytest.mark.timeout(TIMEOUT)
def test_chat_says_the_real_time_in_tokyo_with_the_models_own_template(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """`voice-agent chat` as a user runs it: default instructions and tools."""
    server = server_for(request, "own")
    env = chat_env(
        LLM_BASE_URL=server.base_url,
        LLM_MODEL="qwen",
        LLM_TIMEOUT=str(TIMEOUT),
        AGENT_TURN_TIMEOUT=str(TIMEOUT),  # a loaded CI machine may take minutes
    )
    started = datetime.now(UTC)
    result = run_cli(
        ["chat"],
        env=env,
        stdin="What time is it in Tokyo right now?\n",
        cwd=tmp_path,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    said = result.stdout.strip()
    assert_only_words(said)
    assert APOLOGY not in said
    assert says_the_time(said, started), said


@pytest.mark.timeout(TIMEOUT)
async def test_session_says_the_real_time_in_tokyo_with_parsed_tool_calls(
    request: pytest.FixtureRequest,
) -> None:
    """An `AgentSession` running the engine as the voice worker does."""
    server = server_for(request, "tool-calls")
    engine = engine_for(server)
    turns: list[Turn] = []
    engine.on_turn_finished.append(turns.append)
    agent = Assistant(engine=engine, instructions=DEFAULT_INSTRUCTIONS, tools=[get_current_time])
    started = datetime.now(UTC)
    async with AgentSession(llm=engine.llm) as session:
        await session.start(agent)
        result = await session.run(user_input="What time is it in Tokyo right now?")
        result.expect.next_event().is_message(role="assistant")
        said = result.expect[0].event().item.text_content or ""
    assert_only_words(said)
    assert says_the_time(said, started), said
    assert [run.name for run in turns[0].stats.tools] == ["get_current_time"]


# --- 2. no tool needed: answered at once ----------------------------------------------


@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize("template", TEMPLATES)
async def test_a_question_without_a_tool_is_answered_in_one_pass(
    request: pytest.FixtureRequest, template: str
) -> None:
    said, turn = await speak(
        server_for(request, template), "What is the capital of France?", [get_current_time]
    )
    assert_only_words(said)
    assert "Paris" in said
    assert turn.stats.tools == []
    assert [p.kind for p in turn.stats.passes] == ["tools"]


# --- 3. a tool that is not offered: never said, never run --------------------------------


@pytest.mark.timeout(TIMEOUT)
async def test_a_call_to_a_tool_not_offered_is_never_said_or_run(
    request: pytest.FixtureRequest,
) -> None:
    """The model's own template: it writes `get_current_weather` in a fence, unoffered."""
    said, turn = await speak(
        server_for(request, "own"), "What's the weather like in Paris today?", [get_current_time]
    )
    assert_only_words(said)
    assert all(run.name == "get_current_time" for run in turn.stats.tools)
    # and it did write one (greedy sampling: the same every run), or this proves nothing
    outcomes = [p.outcome for p in turn.stats.passes]
    assert "tool-call-as-text" in outcomes, outcomes


# --- 4. a tool result is answered in words ----------------------------------------------


@pytest.mark.timeout(TIMEOUT)
async def test_a_tool_result_is_answered_in_words_not_another_call(
    request: pytest.FixtureRequest,
) -> None:
    """The speaking pass after the clock ran: its result is in the history, the tools are
    still offered (tool_choice "none"); what the user gets is the time, in words."""
    now = datetime.now(ZoneInfo("Asia/Tokyo"))
    call = llm.FunctionCall(
        call_id="call_tokyo1", name="get_current_time", arguments='{"timezone": "Asia/Tokyo"}'
    )
    result = llm.FunctionCallOutput(
        call_id=call.call_id,
        name=call.name,
        output=now.strftime("%A, %B %d, %Y, %H:%M (%Z, UTC%z)"),
        is_error=False,
    )
    ctx = llm.ChatContext()
    ctx.add_message(role="system", content=DEFAULT_INSTRUCTIONS)
    ctx.add_message(role="user", content="What time is it in Tokyo right now?")
    ctx.items.extend([call, result])
    engine = make_engine(server_for(request, "own").base_url, timeout=TIMEOUT, max_tool_rounds=0)
    turn = engine.run(ctx, [get_current_time])
    said = "".join([text async for text in turn])
    assert_only_words(said)
    assert says_the_time(said, now), said
    # a call the model writes here anyway is neither run nor kept
    assert not [i for i in turn.new_items if isinstance(i, llm.FunctionCall)]


# --- 5. two tools in one question -------------------------------------------------------


@pytest.mark.timeout(TIMEOUT)
async def test_two_tools_in_one_question_end_in_words(request: pytest.FixtureRequest) -> None:
    """Parsed calls: llama.cpp may answer 500 when the model writes two in one block."""
    said, turn = await speak(
        server_for(request, "tool-calls"),
        "What time is it in Tokyo, and what's the weather in Paris?",
        [get_current_time, get_weather],
    )
    assert_only_words(said)
    assert turn.stats.outcome != "apology", said


# --- 6. thinking is never said ----------------------------------------------------------

THINK_FIRST = (
    f"{DEFAULT_INSTRUCTIONS} Before you answer, think briefly inside <think>...</think>, "
    "then give your short answer after </think>."
)


@pytest.mark.timeout(TIMEOUT)
async def test_thinking_when_asked_to_think_is_never_said(request: pytest.FixtureRequest) -> None:
    said, _ = await speak(
        server_for(request, "own"),
        "Is 17 a prime number?",
        [get_current_time],
        instructions=THINK_FIRST,
    )
    assert_only_words(said)
    assert not re.search(r"\bthink", said, re.IGNORECASE), said
    # words, whatever the model did after its thought: an answer, or (where it went on to
    # call a tool it was not offered, as this one may) the fallback sentence
    assert said.strip(), said


def test_threads_leave_a_core_to_the_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    from testing.servers import llama_server

    monkeypatch.setattr(llama_server.os, "sched_getaffinity", lambda _: {0, 1})
    monkeypatch.delenv("REAL_LLM_THREADS", raising=False)
    assert llama_server.threads() == 1
    monkeypatch.setenv("REAL_LLM_THREADS", "3")
    assert llama_server.threads() == 3
