"""Tool status and turn latency published for the room, from a real `AgentSession` running
our `Assistant`."""

from __future__ import annotations

import json

from livekit.agents import AgentSession, function_tool

from agent.tools import get_current_time
from agent.voice.assistant import Assistant
from agent.voice.room_events import EVENTS_TOPIC, RoomEvents, room_sender
from testing.engine import make_engine
from testing.servers.openai_server import ScriptedLLMServer, ToolCall, text_reply, tool_reply


class Recorder:
    def __init__(self, *, fail: bool = False) -> None:
        self.messages: list[dict[str, object]] = []
        self.fail = fail

    async def __call__(self, payload: bytes) -> None:
        if self.fail:
            raise ConnectionError("the room went away")
        self.messages.append(json.loads(payload))


@function_tool
async def check_weather(city: str) -> str:
    """Look up the weather.

    Args:
        city: The city.
    """
    raise RuntimeError("weather service down")


async def test_session_publishes_each_tool_call_when_it_starts_and_when_it_ends(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(
        tool_reply(
            ToolCall("get_current_time", {"timezone": "UTC"}, id="call_a"),
            ToolCall("check_weather", {"city": "Oslo"}, id="call_b", index=1),
        ),
        text_reply("It is noon, and I could not get the weather."),
    )
    engine = make_engine(llm_server)
    sent = Recorder()
    events = RoomEvents(sent)
    engine.tool_listener = events
    agent = Assistant(
        engine=engine, instructions="Be brief.", tools=[get_current_time, check_weather]
    )
    async with AgentSession(llm=engine.llm) as session:
        events.attach(session)
        await session.start(agent)
        result = await session.run(user_input="Time and weather?")
        item = result.expect[0].event().item
        assert item.text_content == "It is noon, and I could not get the weather."
    await events.aclose()

    tools = [m for m in sent.messages if m["type"] == "tool"]
    started = {m["call_id"]: m for m in tools if m["phase"] == "started"}
    finished = {m["call_id"]: m for m in tools if m["phase"] == "finished"}
    assert {k: v["name"] for k, v in started.items()} == {
        "call_a": "get_current_time",
        "call_b": "check_weather",
    }
    assert finished["call_a"]["outcome"] == "ok"
    assert finished["call_b"]["outcome"] == "error"
    assert all(isinstance(m["duration_ms"], float) for m in finished.values())
    # each call's start is published before its end
    order = [(m["call_id"], m["phase"]) for m in tools]
    for call_id in ("call_a", "call_b"):
        assert order.index((call_id, "started")) < order.index((call_id, "finished"))
    # the turn's latency follows its answer, from livekit's metrics of the assistant message
    # (text mode: no speech, so only the LLM's time to first token)
    [latency] = [m for m in sent.messages if m["type"] == "latency"]
    assert sent.messages[-1] is latency
    assert isinstance(latency["llm_ttft_ms"], float) and latency["llm_ttft_ms"] > 0
    assert "eos_to_first_audio_ms" not in latency


async def test_a_room_that_cannot_be_told_does_not_cost_the_turn(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(
        tool_reply(ToolCall("get_current_time", {"timezone": "UTC"})),
        text_reply("It is noon."),
    )
    engine = make_engine(llm_server)
    events = RoomEvents(Recorder(fail=True))
    engine.tool_listener = events
    agent = Assistant(engine=engine, instructions="Be brief.", tools=[get_current_time])
    async with AgentSession(llm=engine.llm) as session:
        events.attach(session)
        await session.start(agent)
        result = await session.run(user_input="What time is it?")
        assert result.expect[0].event().item.text_content == "It is noon."
    await events.aclose()
    assert len(llm_server.requests) == 2  # the tool ran and the answer came after it


async def test_room_sender_publishes_reliably_on_the_pages_topic() -> None:
    """What `room_sender` asks of livekit's `LocalParticipant.publish_data` (no LiveKit
    server here: a stand-in records the call). The page's side of the topic is checked in
    test_talk_page."""
    calls: list[tuple[bytes, dict[str, object]]] = []

    class Participant:
        async def publish_data(self, payload: bytes, **kwargs: object) -> None:
            calls.append((payload, kwargs))

    class Room:
        local_participant = Participant()

    send = room_sender(Room())  # type: ignore[arg-type]
    await send(b'{"type": "tool"}')
    assert calls == [(b'{"type": "tool"}', {"reliable": True, "topic": EVENTS_TOPIC})]
