"""A turn cut off before its end (the user interrupted, the turn timed out, a preemptive
attempt was discarded): the page is told its tools ended, it is counted as cancelled, not
answered, and the history keeps what its tools did once the reply was confirmed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from livekit.agents import ModelSettings, llm
from livekit.agents.llm import function_tool
from livekit.agents.voice import SpeechHandle
from livekit.agents.voice.agent_activity import _SpeechHandleContextVar
from prometheus_client import REGISTRY

from agent.ops.metrics import record_turn
from agent.voice.assistant import Assistant
from testing.engine import make_engine
from testing.polling import until
from testing.servers.openai_server import ScriptedLLMServer, ToolCall, text_reply, tool_reply

FILLER = "One moment."


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@dataclass
class Listener:
    started: list[tuple[str, str]] = field(default_factory=list)
    finished: list[tuple[str, str, str]] = field(default_factory=list)

    def tool_started(self, *, call_id: str, name: str) -> None:
        self.started.append((call_id, name))

    def tool_finished(self, *, call_id: str, name: str, outcome: str, duration: float) -> None:
        self.finished.append((call_id, name, outcome))


class Booking:
    """A tool with an effect that happens at once, then a long wait for its answer."""

    def __init__(self) -> None:
        self.booked: list[str] = []

        @function_tool
        async def book_table(day: str) -> str:
            """Book a table.

            Args:
                day: Which day.
            """
            self.booked.append(day)
            await asyncio.sleep(30)
            return "Booked."

        @function_tool
        async def check_menu() -> str:
            """Read today's menu."""
            return "Soup and bread."

        self.book = book_table
        self.menu = check_menu


def _ctx(text: str = "Book a table for Friday.") -> llm.ChatContext:
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content=text)
    return ctx


async def test_a_tool_cut_off_by_an_interruption_is_reported_finished(
    llm_server: ScriptedLLMServer,
) -> None:
    booking = Booking()
    listener = Listener()
    llm_server.script(tool_reply(ToolCall("book_table", {"day": "Friday"})))
    engine = make_engine(llm_server, filler=FILLER, filler_delay=0.1, tool_timeout=60)
    engine.tool_listener = listener
    turn = engine.run(_ctx(), [booking.book])
    assert await anext(aiter(turn)) == FILLER
    await turn.aclose()  # the user interrupted
    await until(lambda: bool(listener.finished), within=5, what="tool_finished")
    ((call_id, _),) = listener.started
    assert listener.finished == [(call_id, "book_table", "cancelled")]
    await engine.llm.aclose()


async def test_a_discarded_turn_is_counted_cancelled_not_answered(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(text_reply("Too late.", ttft=5.0))
    engine = make_engine(llm_server, timeout=10.0)
    finished: list[str] = []
    engine.on_turn_finished.extend([record_turn, lambda t: finished.append(t.stats.outcome)])
    answered = sample("voice_agent_turns_total", outcome="answered")
    cancelled = sample("voice_agent_turns_total", outcome="cancelled")

    async def consume() -> str:
        return "".join([t async for t in engine.run(_ctx("What is on the menu?"), [])])

    attempt = asyncio.create_task(consume())
    await until(lambda: bool(llm_server.requests), within=5, what="the request")
    attempt.cancel()  # livekit throws the preemptive attempt away
    await asyncio.gather(attempt, return_exceptions=True)
    assert finished == ["cancelled"]
    assert sample("voice_agent_turns_total", outcome="cancelled") == cancelled + 1
    assert sample("voice_agent_turns_total", outcome="answered") == answered
    await engine.llm.aclose()


async def test_an_interrupted_reply_keeps_what_its_tools_did_in_the_history(
    llm_server: ScriptedLLMServer,
) -> None:
    booking = Booking()
    llm_server.script(
        tool_reply(
            ToolCall("check_menu", {}, id="m", index=0),
            ToolCall("book_table", {"day": "Friday"}, id="b", index=1),
        )
    )
    engine = make_engine(llm_server, filler=FILLER, filler_delay=0.3, tool_timeout=60)
    agent = Assistant(engine=engine, instructions="Test.", tools=[booking.book, booking.menu])
    reply = agent.llm_node(_ctx(), [booking.book, booking.menu], ModelSettings())
    assert isinstance(reply, AsyncGenerator)
    assert await anext(reply) == FILLER
    assert booking.booked == ["Friday"]  # it has had its effect
    await reply.aclose()  # the user interrupted while the filler played
    calls = [i for i in agent.chat_ctx.items if isinstance(i, llm.FunctionCall)]
    outputs = [i for i in agent.chat_ctx.items if isinstance(i, llm.FunctionCallOutput)]
    assert [c.name for c in calls] == ["check_menu", "book_table"]
    assert outputs[0].output == "Soup and bread."
    assert outputs[1].is_error and "interrupted" in outputs[1].output
    assert [o.call_id for o in outputs] == [c.call_id for c in calls]
    await engine.llm.aclose()


async def test_a_discarded_preemptive_attempt_leaves_no_trace_in_the_history(
    llm_server: ScriptedLLMServer,
) -> None:
    booking = Booking()
    llm_server.script(tool_reply(ToolCall("check_menu", {})), text_reply("Soup.", ttft=5.0))
    engine = make_engine(llm_server, timeout=10.0)
    agent = Assistant(engine=engine, instructions="Test.", tools=[booking.menu])

    async def attempt() -> None:
        async for _ in agent.llm_node(
            _ctx("What is on the menu?"), [booking.menu], ModelSettings()
        ):
            pass

    guess = SpeechHandle.create()  # preemptive: not scheduled
    token = _SpeechHandleContextVar.set(guess)
    try:
        task = asyncio.create_task(attempt())
    finally:
        _SpeechHandleContextVar.reset(token)
    await until(lambda: len(llm_server.requests) == 2, within=5, what="the speaking pass")
    task.cancel()  # the user went on
    await asyncio.gather(task, return_exceptions=True)
    assert not any(isinstance(i, llm.FunctionCall) for i in agent.chat_ctx.items)
    await engine.llm.aclose()
