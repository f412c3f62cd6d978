"""A tool pass the server fails on the model's own output (llama.cpp's HTTP 500 "does not
match the expected peg-native format", or the same as an error event mid-stream) ends in
words: the pass is asked again without tools; if that fails too, the apology. Never
silence, never the server's message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from livekit.agents import llm

from agent.engine.turns import _rejected
from agent.tools import get_current_time
from providers import APIConnectionError, ModelOutputRejected
from testing.chat_turns import FOLLOW_UP, assert_never_said_or_logged, chat
from testing.engine import APOLOGY, FALLBACK, make_engine
from testing.servers.openai_server import (
    Finish,
    Raw,
    Reply,
    ScriptedLLMServer,
    Status,
    Text,
    ToolCall,
    text_reply,
    tool_reply,
)

pytestmark = pytest.mark.timeout(60)

PEG = "The model produced output that does not match the expected peg-native format"
PEG_500 = Status(500, {"error": {"code": 500, "message": PEG, "type": "server_error"}})
PEG_EVENT = Raw(f"data: {json.dumps({'error': {'code': 500, 'message': PEG}})}\n\n".encode())
ANSWER = "It is noon in Tokyo."

REJECTIONS = {
    "HTTP 500": Reply.of(PEG_500),
    "error event after words": Reply.of(Text("Let me check. "), PEG_EVENT),
    "llama.cpp parse failure text": Reply.of(
        Status(500, "Failed to parse tool call arguments as JSON")
    ),
}


async def one_turn(server: ScriptedLLMServer) -> tuple[str, str]:
    engine = make_engine(server)
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="Time in Tokyo?")
    turn = engine.run(ctx, [get_current_time])
    try:
        return "".join([t async for t in turn]), turn.stats.outcome
    finally:
        await engine.llm.aclose()


@pytest.mark.parametrize("rejection", list(REJECTIONS))
async def test_a_rejected_tool_pass_is_asked_again_without_tools_and_answered(
    rejection: str, llm_server: ScriptedLLMServer
) -> None:
    llm_server.script(REJECTIONS[rejection], text_reply(ANSWER))
    said, outcome = await one_turn(llm_server)
    preface = "Let me check. " if "words" in rejection else ""
    assert said == f"{preface}{ANSWER}"
    assert outcome == "answered"
    first, retry = llm_server.requests
    assert first.tool_names == ["get_current_time"]
    assert "tools" not in retry.body and "tool_choice" not in retry.body
    if preface:  # what was said stays in the context, and is not said again
        assert retry.messages[-1] == {"role": "assistant", "content": preface.strip()}
    assert PEG not in said and "500" not in said


async def test_a_rejected_tool_pass_whose_retry_fails_too_ends_in_the_apology(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(Reply.of(PEG_500), Reply.of(PEG_500))
    said, outcome = await one_turn(llm_server)
    assert said == APOLOGY
    assert outcome == "apology"
    assert len(llm_server.requests) == 2


async def test_a_rejected_tool_pass_whose_retry_says_nothing_ends_in_the_fallback(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(Reply.of(PEG_500), Reply.of(Finish("stop")))
    said, outcome = await one_turn(llm_server)
    assert said == FALLBACK
    assert outcome == "fallback"


ECHOED_REQUEST = {
    "tools": [{"type": "function", "function": {"name": "get_current_time"}}],
    "messages": [{"role": "assistant", "tool_calls": [], "content": "model produced output"}],
}
OUTAGES = {
    "out of memory": "CUDA out of memory",
    "bad request body": "Failed to parse request body",
    "parser word": {"error": {"message": "upstream parse error: worker unreachable"}},
    "echoed request": {"error": {"message": "Internal error", "request": ECHOED_REQUEST}},
    "echoed at top level": {"message": "Server overloaded", **ECHOED_REQUEST},
}


@pytest.mark.parametrize("outage", list(OUTAGES))
async def test_an_outage_500_in_the_tool_pass_is_not_taken_for_a_rejected_output(
    outage: str, llm_server: ScriptedLLMServer
) -> None:
    """Only the message names a rejection, and only in a parser's own words: a body that
    echoes the request, or says "parse" of something else, is an outage."""
    llm_server.script(Reply.of(Status(500, OUTAGES[outage])), text_reply(ANSWER))
    said, outcome = await one_turn(llm_server)
    assert said == APOLOGY and outcome == "apology"
    assert len(llm_server.requests) == 1


def test_through_chat_the_parser_message_is_neither_said_nor_logged(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    secret_echo = "sk-live-SECRET-ECHO"
    message = f"{PEG}: <tool_call>{secret_echo}</tool_call>"
    llm_server.script(
        Reply.of(Status(500, {"error": {"code": 500, "message": message}})),
        text_reply(ANSWER),
        text_reply("Nothing more."),
    )
    result = chat(llm_server, tmp_path, ["Time in Tokyo?", FOLLOW_UP])
    assert result.stdout == f"{ANSWER}\nNothing more.\n"
    assert_never_said_or_logged(result, "peg-native", secret_echo)


async def test_a_rejected_tool_pass_is_not_resent_with_tools_by_the_client_retries(
    llm_server: ScriptedLLMServer,
) -> None:
    """The same tool request would fail the same way: no retry, straight to words."""
    llm_server.script(Reply.of(PEG_500), text_reply(ANSWER))
    engine = make_engine(llm_server, max_retries=2)
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="Time in Tokyo?")
    try:
        said = "".join([t async for t in engine.run(ctx, [get_current_time])])
    finally:
        await engine.llm.aclose()
    assert said == ANSWER
    first, retry = llm_server.requests
    assert first.tool_names == ["get_current_time"]
    assert "tools" not in retry.body


def test_a_rejection_is_recognised_behind_the_errors_that_wrap_it() -> None:
    """livekit's client and FallbackAdapter raise their own APIConnectionError, chained
    to (or raised while handling) the rejection."""
    rejected = ModelOutputRejected("rejected", status_code=500, body=None, retryable=False)
    try:
        try:
            raise rejected
        except ModelOutputRejected as e:
            raise APIConnectionError("failed after 3 attempts") from e
    except APIConnectionError as e:
        by_cause = e
    try:
        try:
            raise by_cause
        except APIConnectionError:
            raise APIConnectionError("all LLMs failed") from None
    except APIConnectionError as e:
        by_context = e
    assert _rejected(rejected) and _rejected(by_cause) and _rejected(by_context)
    assert not _rejected(APIConnectionError("could not connect"))


async def test_a_rejected_speaking_pass_is_asked_again_without_tools_and_answered(
    llm_server: ScriptedLLMServer,
) -> None:
    """The tool ran; the speaking pass (tool_choice="none") fails in the server's parser:
    the plain pass, without tools, still answers with the tool's result."""
    llm_server.script(
        tool_reply(ToolCall("get_current_time", {"timezone": "Asia/Tokyo"})),
        Reply.of(PEG_500),
        text_reply(ANSWER),
    )
    said, outcome = await one_turn(llm_server)
    assert said == ANSWER and outcome == "answered"
    _, speak, plain = llm_server.requests
    assert speak.body.get("tool_choice") == "none"
    assert "tools" not in plain.body and "tool_choice" not in plain.body
    assert plain.messages[-1]["role"] == "tool"
