"""The filler sentence during slow tools, and the bounded history (chat and voice)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from livekit.agents import AgentSession, llm
from livekit.agents.llm import function_tool

from agent.engine.history import HistoryLimits, bound_history
from agent.engine.turns import Turn
from agent.voice.assistant import Assistant
from testing.cli import chat_env, run_cli
from testing.engine import make_engine
from testing.servers.openai_server import ScriptedLLMServer, ToolCall, text_reply, tool_reply

FILLER = "One moment."


@function_tool
async def slow_lookup() -> str:
    """A tool that takes a while."""
    await asyncio.sleep(0.6)
    return "Found it."


@function_tool
async def fast_lookup() -> str:
    """A tool that answers at once."""
    return "Found it."


TOOLS: list[llm.Tool] = [slow_lookup, fast_lookup]


def user_ctx() -> llm.ChatContext:
    ctx = llm.ChatContext()
    ctx.add_message(role="system", content="You are a test assistant.")
    ctx.add_message(role="user", content="Look it up.")
    return ctx


async def chunks_of(llm_server: ScriptedLLMServer, **opts: object) -> tuple[list[str], Turn]:
    opts = {"filler": FILLER, "filler_delay": 0.2, **opts}
    turn = make_engine(llm_server, **opts).run(user_ctx(), TOOLS)
    return [t async for t in turn], turn


# --- filler ----------------------------------------------------------------------------


async def test_slow_tool_gets_exactly_one_filler_kept_out_of_text_and_context(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(tool_reply(ToolCall("slow_lookup")), text_reply("Here it is."))
    chunks, turn = await chunks_of(llm_server)
    assert [c for c in chunks if FILLER in c] == [FILLER]
    assert "".join(chunks) == "One moment. Here it is."
    assert turn.filler == FILLER
    assert turn.text == "Here it is."  # what chat and voice record as the assistant's words
    assert FILLER not in json.dumps(llm_server.requests[1].messages)


async def test_fast_tool_gets_no_filler(llm_server: ScriptedLLMServer) -> None:
    llm_server.script(tool_reply(ToolCall("fast_lookup")), text_reply("Here it is."))
    chunks, turn = await chunks_of(llm_server)
    assert "".join(chunks) == "Here it is."
    assert turn.filler is None


async def test_filler_is_not_repeated_across_tool_rounds(llm_server: ScriptedLLMServer) -> None:
    llm_server.script(
        tool_reply(ToolCall("slow_lookup")),
        tool_reply(ToolCall("slow_lookup")),
        text_reply("Both done."),
    )
    chunks, _ = await chunks_of(llm_server, max_tool_rounds=2)
    assert len(llm_server.requests) == 3
    assert sum(FILLER in c for c in chunks) == 1
    assert "".join(chunks) == "One moment. Both done."


async def test_filler_follows_text_said_before_the_tool_call(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(
        tool_reply(ToolCall("slow_lookup"), text="Let me check."), text_reply("Here it is.")
    )
    chunks, turn = await chunks_of(llm_server)
    assert "".join(chunks) == "Let me check. One moment. Here it is."
    assert FILLER not in turn.text


async def test_empty_filler_setting_says_nothing_while_tools_run(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(tool_reply(ToolCall("slow_lookup")), text_reply("Here it is."))
    chunks, turn = await chunks_of(llm_server, filler="")
    assert "".join(chunks) == "Here it is."
    assert turn.filler is None


async def test_abandoning_a_turn_during_the_filler_cancels_its_tools(
    llm_server: ScriptedLLMServer,
) -> None:
    finished = asyncio.Event()

    @function_tool
    async def endless() -> str:
        """Never finishes on its own."""
        try:
            await asyncio.sleep(30)
        finally:
            finished.set()
        return "never"

    llm_server.script(tool_reply(ToolCall("endless")))
    engine = make_engine(llm_server, filler=FILLER, filler_delay=0.1, tool_timeout=30)
    gen = aiter(engine.run(user_ctx(), [endless]))
    assert await anext(gen) == FILLER
    await gen.aclose()  # e.g. the user interrupted
    await asyncio.wait_for(finished.wait(), timeout=5)


# --- voice: the Assistant ------------------------------------------------------------------


async def test_voice_history_keeps_the_tool_items_but_not_the_filler(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(
        tool_reply(ToolCall("slow_lookup")), text_reply("Here it is."), text_reply("Bye.")
    )
    engine = make_engine(llm_server, filler=FILLER, filler_delay=0.2)
    agent = Assistant(engine=engine, instructions="You are a test assistant.", tools=TOOLS)
    async with AgentSession(llm=engine.llm) as session:
        await session.start(agent)
        first = await session.run(user_input="Look it up.")
        # spoken: the filler, then the answer; livekit records all of it as said
        assert first.expect[0].event().item.text_content == "One moment. Here it is."
        second = await session.run(user_input="Thanks.")
        assert second.expect[0].event().item.text_content == "Bye."

    sent = llm_server.requests[2].messages
    assert FILLER not in json.dumps(sent)
    roles = ["system", "user", "assistant", "tool", "assistant", "user"]
    assert [m["role"] for m in sent] == roles
    assert sent[2]["tool_calls"][0]["function"]["name"] == "slow_lookup"
    assert sent[4]["content"] == "Here it is."
    assert FILLER not in json.dumps(agent.chat_ctx.to_dict())


# --- bounded history -----------------------------------------------------------------------


def history_with_turns(n: int, *, result: str = "r" * 2000) -> llm.ChatContext:
    ctx = llm.ChatContext()
    ctx.add_message(role="system", content="instructions")
    for i in range(n):
        ctx.add_message(role="user", content=f"question {i}")
        ctx.items.append(llm.FunctionCall(call_id=f"c{i}", name="lookup", arguments="{}"))
        ctx.items.append(
            llm.FunctionCallOutput(call_id=f"c{i}", name="lookup", output=result, is_error=False)
        )
        ctx.add_message(role="assistant", content=f"answer {i}")
    return ctx


def test_history_keeps_the_instructions_and_the_last_turns_whole() -> None:
    ctx = bound_history(history_with_turns(10), HistoryLimits(max_turns=3))
    items = ctx.items
    assert isinstance(items[0], llm.ChatMessage) and items[0].text_content == "instructions"
    assert isinstance(items[1], llm.ChatMessage) and items[1].text_content == "question 7"
    assert len(items) == 1 + 3 * 4
    call_ids = [i.call_id for i in items if isinstance(i, llm.FunctionCall)]
    output_ids = [i.call_id for i in items if isinstance(i, llm.FunctionCallOutput)]
    assert call_ids == output_ids == ["c7", "c8", "c9"]


@pytest.mark.parametrize("max_turns", [1, 2, 5, 9])
def test_history_never_separates_a_tool_call_from_its_result(max_turns: int) -> None:
    ctx = history_with_turns(10)
    ctx.add_message(role="user", content="latest")
    bound_history(ctx, HistoryLimits(max_turns=max_turns))
    calls = {i.call_id for i in ctx.items if isinstance(i, llm.FunctionCall)}
    outputs = {i.call_id for i in ctx.items if isinstance(i, llm.FunctionCallOutput)}
    assert calls == outputs
    assert sum(isinstance(i, llm.ChatMessage) and i.role == "user" for i in ctx.items) == max_turns


def test_earlier_tool_results_are_cut_in_the_history() -> None:
    ctx = bound_history(history_with_turns(2), HistoryLimits(max_tool_result_chars=100))
    outputs = [i.output for i in ctx.items if isinstance(i, llm.FunctionCallOutput)]
    assert [len(o) <= 100 and o.endswith("[cut]") for o in outputs] == [True, True]


def test_chat_sends_only_the_configured_number_of_turns(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    result = run_cli(
        ["chat"],
        env=chat_env(llm_server, HISTORY_MAX_TURNS="2", BUILTIN_TOOLS="false"),
        stdin="one\ntwo\nthree\nfour\n",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    last = llm_server.requests[-1].messages
    assert [(m["role"], m["content"]) for m in last] == [
        ("system", last[0]["content"]),
        ("user", "three"),
        ("assistant", "Default reply."),
        ("user", "four"),
    ]
