"""The engine as livekit-agents runs it: `Assistant.llm_node` inside a real `AgentSession`."""

from __future__ import annotations

from livekit.agents import AgentSession, llm

from agent.tools import get_current_time
from agent.voice.assistant import Assistant
from testing.engine import APOLOGY, make_engine
from testing.servers.openai_server import (
    Reply,
    ScriptedLLMServer,
    Status,
    ToolCall,
    text_reply,
    tool_reply,
)


async def test_session_turn_with_a_tool_speaks_and_keeps_the_tool_history(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(
        tool_reply(ToolCall("get_current_time", {"timezone": "UTC"}), text="Let me see."),
        text_reply("It is noon."),
        text_reply("You asked for the time."),
    )
    engine = make_engine(llm_server)
    agent = Assistant(engine=engine, instructions="Be brief.", tools=[get_current_time])
    async with AgentSession(llm=engine.llm) as session:
        await session.start(agent)
        first = await session.run(user_input="What time is it?")
        first.expect.next_event().is_message(role="assistant")
        assert first.expect[0].event().item.text_content == "Let me see. It is noon."

        second = await session.run(user_input="What did I ask?")
        assert second.expect[0].event().item.text_content == "You asked for the time."

    # the third request (turn two) carries turn one's tool call and result
    messages = llm_server.requests[2].messages
    assert messages[0]["role"] == "system"
    tool_msgs = [m for m in messages if m["role"] == "tool"]
    assert len(tool_msgs) == 1 and "UTC" in tool_msgs[0]["content"]
    assert messages[-1] == {"role": "user", "content": "What did I ask?"}
    # the tool call and its result sit between the question and the answer they produced
    roles = [m["role"] for m in messages]
    assert roles[1:] == ["user", "assistant", "tool", "assistant", "user"], roles
    assert messages[2]["tool_calls"][0]["function"]["name"] == "get_current_time"
    assert messages[4]["content"] == "Let me see. It is noon."
    kinds = [type(item).__name__ for item in agent.chat_ctx.items]
    assert kinds.count("FunctionCall") == 1 and kinds.count("FunctionCallOutput") == 1


async def test_session_backend_error_is_spoken_as_an_apology(llm_server: ScriptedLLMServer) -> None:
    llm_server.script(Reply.of(Status(500)))
    engine = make_engine(llm_server)
    async with AgentSession(llm=engine.llm) as session:
        await session.start(Assistant(engine=engine, instructions="Be brief."))
        result = await session.run(user_input="Hello?")
        result.expect.next_event().is_message(role="assistant")
        item = result.expect[0].event().item
        assert isinstance(item, llm.ChatMessage)
        assert item.text_content == APOLOGY
