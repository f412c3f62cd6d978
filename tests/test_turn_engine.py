"""The two-pass turn engine against a real OpenAI-compatible server (HTTP + SSE)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from livekit.agents import llm
from livekit.agents.llm import ToolError, function_tool

from agent.engine.turns import Turn, TurnEngine
from agent.tools import get_current_time
from testing.engine import APOLOGY, FALLBACK, make_engine
from testing.polling import until
from testing.servers.openai_server import (
    Cut,
    Finish,
    Hang,
    Raw,
    Reply,
    ScriptedLLMServer,
    Sleep,
    Status,
    Text,
    ToolCall,
    text_reply,
    tool_reply,
)


def user_ctx(text: str = "Hello?") -> llm.ChatContext:
    ctx = llm.ChatContext()
    ctx.add_message(role="system", content="You are a test assistant.")
    ctx.add_message(role="user", content=text)
    return ctx


async def speak(engine: TurnEngine, tools: list[llm.Tool] | None = None) -> tuple[str, Turn]:
    turn = engine.run(user_ctx(), tools or [])
    said = "".join([text async for text in turn])
    return said, turn


@function_tool
async def lookup_order(order_id: int) -> str:
    """Look up an order.

    Args:
        order_id: The order number.
    """
    return f"Order {order_id} ships tomorrow."


@function_tool
async def broken_tool() -> str:
    """A tool that crashes."""
    raise RuntimeError("database password=hunter2 rejected")


@function_tool
async def refusing_tool() -> str:
    """A tool that reports a problem the model may read."""
    raise ToolError("The service is closed today.")


@function_tool
async def slow_tool() -> str:
    """A tool that never answers in time."""
    await asyncio.sleep(30)
    return "too late"


TOOLS: list[llm.Tool] = [get_current_time, lookup_order, broken_tool, refusing_tool, slow_tool]


def tool_output(server: ScriptedLLMServer, request: int = 1) -> dict[str, object]:
    return next(m for m in server.requests[request].messages if m["role"] == "tool")


# --- text without tools ------------------------------------------------------------


async def test_text_reaches_the_caller_before_the_completion_ends(
    llm_server: ScriptedLLMServer,
) -> None:
    # past the start of a reply that is held in case a bare `</think>` closes a thought
    # there (LLM_THOUGHT_HOLD, 32 characters: seven words here), words stream
    words = "One two three four five six seven eight nine ten eleven twelve thirteen."
    llm_server.script(text_reply(words, token_delay=0.15))
    turn = make_engine(llm_server).run(user_ctx(), TOOLS)
    first_delta_at = None
    said = ""
    async for text in turn:
        first_delta_at = first_delta_at or time.perf_counter()
        said += text
    finished_at = time.perf_counter()
    assert said == words
    assert first_delta_at is not None
    # thirteen chunks 150 ms apart: the first words must not wait for the other six
    assert finished_at - first_delta_at >= 0.6
    assert turn.stats.outcome == "answered"
    assert len(llm_server.requests) == 1  # no speaking pass needed


async def test_no_tools_means_no_tool_schema_in_the_request(llm_server: ScriptedLLMServer) -> None:
    llm_server.script(text_reply("Hi."))
    said, _ = await speak(make_engine(llm_server))
    assert said == "Hi."
    assert "tools" not in llm_server.requests[0].body


# --- tool calls -----------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        ToolCall("lookup_order", {"order_id": 42}, splits=5),
        ToolCall("lookup_order", {"order_id": 42}, splits=4, index=None),
        ToolCall("lookup_order", {"order_id": 42}, splits=3, repeat_id=True),
        ToolCall("lookup_order", {"order_id": 42}, splits=1, index=7),
    ],
    ids=["split-args", "no-index", "repeated-id", "odd-index"],
)
async def test_tool_call_deltas_are_reassembled_and_the_result_is_spoken(
    llm_server: ScriptedLLMServer, call: ToolCall
) -> None:
    llm_server.script(tool_reply(call), text_reply("It ships tomorrow."))
    said, turn = await speak(make_engine(llm_server), TOOLS)
    assert said == "It ships tomorrow."
    assert tool_output(llm_server)["content"] == "Order 42 ships tomorrow."
    speaking = llm_server.requests[1].body
    assert speaking["tool_choice"] == "none"
    assert [t.outcome for t in turn.stats.tools] == ["ok"]


async def test_parallel_calls_all_numbered_zero_each_run(llm_server: ScriptedLLMServer) -> None:
    llm_server.script(
        tool_reply(
            ToolCall("lookup_order", {"order_id": 1}, id="a", index=0),
            ToolCall("lookup_order", {"order_id": 2}, id="b", index=0),
        ),
        text_reply("Both ship tomorrow."),
    )
    said, _ = await speak(make_engine(llm_server), TOOLS)
    assert said == "Both ship tomorrow."
    outputs = [m["content"] for m in llm_server.requests[1].messages if m["role"] == "tool"]
    assert outputs == ["Order 1 ships tomorrow.", "Order 2 ships tomorrow."]


async def test_tool_call_without_finish_reason_still_runs(llm_server: ScriptedLLMServer) -> None:
    llm_server.script(
        Reply.of(ToolCall("lookup_order", {"order_id": 5}), Finish(None), Finish("stop")),
        text_reply("Done."),
    )
    said, _ = await speak(make_engine(llm_server), TOOLS)
    assert said == "Done."
    assert tool_output(llm_server)["content"] == "Order 5 ships tomorrow."


async def test_text_before_a_tool_call_is_spoken_at_once_and_kept(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(
        tool_reply(ToolCall("get_current_time", {"timezone": "UTC"}), text="Let me check."),
        text_reply("It is noon."),
    )
    said, turn = await speak(make_engine(llm_server), TOOLS)
    assert said == "Let me check. It is noon."
    roles = [m["role"] for m in llm_server.requests[1].messages]
    assert roles[-3:] == ["assistant", "assistant", "tool"]
    assert [type(i).__name__ for i in turn.new_items] == ["FunctionCall", "FunctionCallOutput"]


@pytest.mark.parametrize(
    ("call", "expected_in_result"),
    [
        (ToolCall("no_such_tool", {}), "Unknown function"),
        (ToolCall("lookup_order", '{"order_id": "not a number"}'), "Error parsing arguments"),
        (ToolCall("lookup_order", "{}"), "Error parsing arguments"),
        (ToolCall("broken_tool", {}), "An internal error occurred"),
        (ToolCall("refusing_tool", {}), "The service is closed today."),
        (ToolCall("slow_tool", {}), "did not answer within 1 seconds"),
        (ToolCall("get_current_time", {"timezone": "Mars/Olympus"}), "Unknown time zone"),
    ],
    ids=["unknown", "bad-type", "missing-arg", "raises", "tool-error", "timeout", "bad-tz"],
)
async def test_failing_tools_give_the_model_an_error_it_can_speak_about(
    llm_server: ScriptedLLMServer, call: ToolCall, expected_in_result: str
) -> None:
    llm_server.script(tool_reply(call), text_reply("That did not work, sorry."))
    said, turn = await speak(make_engine(llm_server), TOOLS)
    assert said == "That did not work, sorry."
    result = tool_output(llm_server)
    assert expected_in_result in str(result["content"])
    assert "hunter2" not in json.dumps(llm_server.requests[1].body)
    # the 30 s tool was cut off at the engine's 1 s tool timeout, not waited for
    expected_outcome = "timeout" if call.name == "slow_tool" else "error"
    assert turn.stats.tools[0].outcome == expected_outcome


async def test_tool_rounds_are_bounded(llm_server: ScriptedLLMServer) -> None:
    call = ToolCall("lookup_order", {"order_id": 1})
    llm_server.script(tool_reply(call), tool_reply(call), text_reply("Done."))
    said, turn = await speak(make_engine(llm_server, max_tool_rounds=2), TOOLS)
    assert said == "Done."
    assert [p.kind for p in turn.stats.passes] == ["tools", "tools", "speak"]
    assert llm_server.requests[2].body["tool_choice"] == "none"


# --- the speaking pass's own fallbacks --------------------------------------------


async def test_server_rejecting_tool_choice_none_is_retried_without_tools(
    llm_server: ScriptedLLMServer,
) -> None:
    engine = make_engine(llm_server)
    llm_server.script(
        tool_reply(ToolCall("lookup_order", {"order_id": 3})),
        Reply.of(Status(400, {"error": {"message": '"auto" tool choice requires flags'}})),
        text_reply("Order 3 ships tomorrow."),
    )
    said, _ = await speak(engine, TOOLS)
    assert said == "Order 3 ships tomorrow."
    assert "tools" not in llm_server.requests[2].body
    assert "tool_choice" not in llm_server.requests[2].body

    # learnt: the next turn skips straight to the tool-free speaking pass
    llm_server.reset()
    llm_server.script(tool_reply(ToolCall("lookup_order", {"order_id": 4})), text_reply("Ok."))
    said, _ = await speak(engine, TOOLS)
    assert said == "Ok."
    assert len(llm_server.requests) == 2
    assert "tools" not in llm_server.requests[1].body


async def test_speaking_pass_that_calls_tools_again_is_retried_without_tools(
    llm_server: ScriptedLLMServer,
) -> None:
    call = ToolCall("lookup_order", {"order_id": 3})
    llm_server.script(tool_reply(call), tool_reply(call), text_reply("Ships tomorrow."))
    said, turn = await speak(make_engine(llm_server), TOOLS)
    assert said == "Ships tomorrow."
    assert [p.kind for p in turn.stats.passes] == ["tools", "speak", "speak-plain"]
    assert len(turn.stats.tools) == 1  # the speaking pass's tool call was not run


async def test_model_that_says_nothing_twice_gets_the_fallback_reply(
    llm_server: ScriptedLLMServer,
) -> None:
    empty = Reply.of(Finish("stop"))
    llm_server.script(empty, empty, empty)
    said, turn = await speak(make_engine(llm_server), TOOLS)
    assert said == FALLBACK
    assert turn.stats.outcome == "fallback"
    assert [p.kind for p in turn.stats.passes] == ["tools", "speak", "speak-plain"]


async def test_empty_completion_without_tools_is_retried_once_then_fallback(
    llm_server: ScriptedLLMServer,
) -> None:
    empty = Reply.of(Finish("stop"))
    llm_server.script(empty, empty)
    said, _ = await speak(make_engine(llm_server))
    assert said == FALLBACK
    assert len(llm_server.requests) == 2


@pytest.mark.parametrize(
    "garbled",
    [
        '[TOOL_CALLS][{"name": "lookup_order", "arguments": {"order_id": 1}}]',
        '<function=lookup_order>{"order_id": 1}</function>',
        '{"name": "lookup_order", "arguments": {"order_id": 1}}',
        '<tool_call>\n{"name": "lookup_order"}\n</tool_call>',
    ],
    ids=["mistral", "llama-function", "bare-json", "hermes"],
)
async def test_tool_call_written_as_text_is_never_spoken(
    llm_server: ScriptedLLMServer, garbled: str
) -> None:
    llm_server.script(
        Reply.of(Text(garbled, chunk_words=2), Finish("stop")),
        text_reply("Your order ships tomorrow."),
    )
    said, _ = await speak(make_engine(llm_server), TOOLS)
    assert said == "Your order ships tomorrow."


# --- backend failures end in speech -----------------------------------------------

FAULTS = {
    "http-500": Reply.of(Status(500)),
    "http-503-text": Reply.of(Status(503, "upstream connect error at 10.1.2.3:8000")),
    "http-429": Reply.of(Status(429, {"error": {"message": "rate limit", "type": "rate"}})),
    "hang-before-headers": Reply.of(Hang()),
    "hang-mid-stream": Reply.of(Text("Hello"), Hang()),
    "cut-mid-stream": Reply.of(Text("Hello there"), Cut()),
    "garbage-sse": Reply.of(Raw(b"data: {this is not json\n\n")),
    "error-event": Reply.of(Raw(b'data: {"error": {"message": "CUDA out of memory"}}\n\n')),
    "ends-without-finish": Reply.of(Text("Half a"), done=False),
}


@pytest.mark.timeout(30)  # a hang the client's 1 s timeout did not end fails here
@pytest.mark.parametrize("fault", list(FAULTS), ids=list(FAULTS))
@pytest.mark.parametrize("with_tools", [True, False], ids=["tools", "no-tools"])
async def test_backend_fault_ends_in_an_apology_without_internals(
    llm_server: ScriptedLLMServer, fault: str, with_tools: bool
) -> None:
    llm_server.script(FAULTS[fault])
    engine = make_engine(llm_server, timeout=1.0)
    said, turn = await speak(engine, TOOLS if with_tools else None)
    assert said.endswith(APOLOGY)
    assert turn.stats.outcome == "apology"
    # what was said before the fault stays, and nothing internal is added
    assert said.removesuffix(APOLOGY).strip() in ("", "Hello", "Hello there", "Half a")
    for internal in ("500", "503", "429", "10.1.2.3", "CUDA", "127.0.0.1", "Error", "error"):
        assert internal not in said
    # the fault ended the pass it hit: no request was sent again after it
    assert len(llm_server.requests) == 1


async def test_fault_in_the_speaking_pass_keeps_what_was_said(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(
        tool_reply(ToolCall("lookup_order", {"order_id": 1}), text="Checking."),
        Reply.of(Text("Your order"), Cut()),
    )
    said, turn = await speak(make_engine(llm_server), TOOLS)
    assert said == f"Checking. Your order {APOLOGY}"
    assert turn.stats.outcome == "apology"


async def test_refused_connection_ends_in_an_apology() -> None:
    engine = make_engine("http://127.0.0.1:9/v1")
    said, _ = await speak(engine, TOOLS)
    assert said == APOLOGY


async def test_retries_recover_a_failed_first_attempt_silently(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(Reply.of(Status(503)), text_reply("Recovered."))
    said, _ = await speak(make_engine(llm_server, max_retries=1))
    assert said == "Recovered."
    assert len(llm_server.requests) == 2


async def test_no_retry_once_words_were_streamed(llm_server: ScriptedLLMServer) -> None:
    llm_server.script(Reply.of(Text("Hello there"), Cut()), text_reply("Hello there again."))
    said, _ = await speak(make_engine(llm_server, max_retries=3))
    assert said == f"Hello there {APOLOGY}"
    assert len(llm_server.requests) == 1


# --- blocking mode --------------------------------------------------------------


async def test_blocking_mode_resolves_tools_with_one_non_streamed_request(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(
        tool_reply(ToolCall("lookup_order", {"order_id": 9})), text_reply("Tomorrow.")
    )
    said, _ = await speak(make_engine(llm_server, tool_pass="blocking"), TOOLS)
    assert said == "Tomorrow."
    assert llm_server.requests[0].stream is False
    assert llm_server.requests[1].stream is True
    assert llm_server.requests[1].body["tool_choice"] == "none"
    assert tool_output(llm_server)["content"] == "Order 9 ships tomorrow."


async def test_blocking_mode_answer_without_tools_needs_one_request(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(text_reply("Just text."))
    said, _ = await speak(make_engine(llm_server, tool_pass="blocking"), TOOLS)
    assert said == "Just text."
    assert len(llm_server.requests) == 1


@pytest.mark.parametrize("fault", ["http-500", "hang-before-headers", "garbage-sse"])
async def test_blocking_mode_faults_end_in_an_apology(
    llm_server: ScriptedLLMServer, fault: str
) -> None:
    llm_server.script(FAULTS[fault])
    said, _ = await speak(make_engine(llm_server, tool_pass="blocking", timeout=1.0), TOOLS)
    assert said == APOLOGY


async def test_cancelled_turn_closes_its_http_stream_and_leaves_no_task(
    llm_server: ScriptedLLMServer,
) -> None:
    # the reply pauses for a minute after its first words: only a client that hangs up
    # is seen leaving before then. Its start (32 characters, LLM_THOUGHT_HOLD) comes
    # out as one piece, once past the hold
    first = "one two three four five six seven "
    llm_server.script(Reply.of(Text(f"{first}eight nine"), Sleep(60), Finish("stop")))
    engine = make_engine(llm_server, timeout=30.0)
    tasks_before = asyncio.all_tasks()
    turn = engine.run(user_ctx(), TOOLS)
    it = aiter(turn)
    assert await anext(it) == first
    await it.aclose()  # type: ignore[attr-defined]
    assert turn.text == first
    request = llm_server.requests[0]
    await until(lambda: request.disconnected_at is not None, within=30, what="the hang-up")
    assert request.finished_at is None
    await until(lambda: asyncio.all_tasks() == tasks_before, within=10, what="no turn task")
    await engine.llm.aclose()


async def test_server_refusing_tools_is_answered_without_them(
    llm_server: ScriptedLLMServer,
) -> None:
    engine = make_engine(llm_server)
    # vLLM started without its tool flags says why (a 400 that does not is not remembered:
    # tests/test_context_overflow.py)
    refusal = {"message": '"auto" tool choice requires --enable-auto-tool-choice'}
    llm_server.script(Reply.of(Status(400, refusal)), text_reply("Hello without tools."))
    said, turn = await speak(engine, TOOLS)
    assert said == "Hello without tools."
    assert [p.kind for p in turn.stats.passes] == ["tools"]
    assert "tools" not in llm_server.requests[1].body

    # learnt: the next turn is sent without tools straight away
    llm_server.reset()
    llm_server.script(text_reply("Still here."))
    said, _ = await speak(engine, TOOLS)
    assert said == "Still here."
    assert len(llm_server.requests) == 1
    assert "tools" not in llm_server.requests[0].body


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_auth_and_not_found_errors_are_not_mistaken_for_refused_tools(
    llm_server: ScriptedLLMServer, status: int
) -> None:
    llm_server.script(Reply.of(Status(status)), text_reply("should not be asked"))
    said, _ = await speak(make_engine(llm_server), TOOLS)
    assert said == APOLOGY
    assert len(llm_server.requests) == 1


async def test_words_before_a_tool_call_do_not_excuse_a_silent_speaking_pass(
    llm_server: ScriptedLLMServer,
) -> None:
    empty = Reply.of(Finish("stop"))
    llm_server.script(
        tool_reply(ToolCall("lookup_order", {"order_id": 2}), text="Let me look."),
        empty,
        text_reply("It ships tomorrow."),
    )
    said, turn = await speak(make_engine(llm_server), TOOLS)
    assert said == "Let me look. It ships tomorrow."
    assert [p.kind for p in turn.stats.passes] == ["tools", "speak", "speak-plain"]


async def test_a_reply_opening_with_a_bracketed_aside_is_still_streamed(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(text_reply("[laughs] That is a good one, truly.", token_delay=0.2))
    turn = make_engine(llm_server).run(user_ctx(), TOOLS)
    it = aiter(turn)
    first = await anext(it)
    assert first.startswith("[laughs]")
    rest = "".join([t async for t in it])
    assert first + rest == "[laughs] That is a good one, truly."
