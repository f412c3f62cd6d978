"""A request too long for the model's context is asked again with less history and its
tools, and never switches tools off; tools are remembered as refused only when the server
says it refuses them. Against the scripted server, with error bodies real servers send."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from livekit.agents import llm
from livekit.agents.llm import function_tool

from agent.tools import get_current_time
from testing.engine import make_engine
from testing.servers.openai_server import (
    Reply,
    ScriptedLLMServer,
    Status,
    ToolCall,
    text_reply,
    tool_reply,
)

OVERFLOWS: dict[str, dict[str, Any]] = {
    "vllm": {
        "object": "error",
        "message": "This model's maximum context length is 4096 tokens. However, you "
        "requested 5211 tokens (4187 in the messages, 1024 in the completion). Please "
        "reduce the length of the messages or completion.",
        "type": "BadRequestError",
        "code": 400,
    },
    "openai": {
        "error": {
            "message": "This model's maximum context length is 8192 tokens. However, your "
            "messages resulted in 9013 tokens.",
            "type": "invalid_request_error",
            "code": "context_length_exceeded",
        }
    },
    "llama.cpp": {
        "error": {
            "code": 400,
            "message": "the request exceeds the available context size, try increasing it",
            "type": "exceed_context_size_error",
        }
    },
    "tgi": {
        "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be "
        "<= 4096. Given: 4000 `inputs` tokens and 512 `max_new_tokens`"
    },
}
TOOL_REFUSALS: dict[str, dict[str, Any]] = {
    "vllm": {
        "object": "error",
        "message": '"auto" tool choice requires --enable-auto-tool-choice and '
        "--tool-call-parser to be set",
        "type": "BadRequestError",
        "code": 400,
    },
    "llama.cpp": {"error": {"code": 400, "message": "tools param requires --jinja flag"}},
    "ollama": {"error": "registry.ollama.ai/library/gemma:2b does not support tools"},
}


def _size(body: dict[str, Any]) -> int:
    return len(json.dumps(body["messages"])) + len(json.dumps(body.get("tools") or []))


def context_of(limit: int, overflow: dict[str, Any]) -> Callable[[dict[str, Any]], Reply]:
    """A server with a context of `limit` characters (tool schemas count too)."""

    def answer(body: dict[str, Any]) -> Reply:
        return Reply.of(Status(400, overflow)) if _size(body) > limit else text_reply("Fine.")

    return answer


def long_history(turns: int = 6) -> llm.ChatContext:
    ctx = llm.ChatContext()
    ctx.add_message(role="system", content="You are a test assistant.")
    for i in range(turns):
        ctx.add_message(role="user", content=f"Question {i}: " + "tell me more " * 40)
        ctx.add_message(role="assistant", content=f"Answer {i}: " + "here is more " * 40)
    ctx.add_message(role="user", content="What time is it in Tokyo?")
    return ctx


async def say(server: ScriptedLLMServer, engine: Any, ctx: llm.ChatContext) -> str:
    return "".join([t async for t in engine.run(ctx, [get_current_time])])


@pytest.mark.parametrize("server_kind", list(OVERFLOWS))
async def test_an_overflow_is_asked_again_with_less_history_and_never_turns_tools_off(
    server_kind: str,
) -> None:
    full = long_history()
    with ScriptedLLMServer() as server:
        # fits without the tool schemas, or without the earliest turns: only the second
        # keeps the tools
        server.default = context_of(_limit(full) + 50, OVERFLOWS[server_kind])
        engine = make_engine(server)
        assert await say(server, engine, full) == "Fine."
        first, retried = server.requests[0].body, server.requests[-1].body
        assert "tools" in retried
        assert retried["messages"][0] == first["messages"][0]  # the instructions
        assert retried["messages"][-1] == first["messages"][-1]  # the question
        assert len(retried["messages"]) < len(first["messages"])
        # three more turns, short enough: every one is offered the tools
        server.reset()
        for _ in range(3):
            assert await say(server, engine, _short()) == "Fine."
        assert [("tools" in r.body) for r in server.requests] == [True, True, True]
        await engine.llm.aclose()


def _limit(ctx: llm.ChatContext) -> int:
    messages, _ = ctx.to_provider_format("openai")
    return len(json.dumps(messages))


def _short() -> llm.ChatContext:
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="And now?")
    return ctx


@function_tool
async def long_report() -> str:
    """Fetch the full report."""
    return "line of the report. " * 1000


async def test_an_overflow_from_the_current_tool_result_cuts_that_result_and_keeps_tools() -> None:
    with ScriptedLLMServer() as server:
        server.default = context_of(6000, OVERFLOWS["vllm"])
        server.script(tool_reply(ToolCall("long_report", {})))
        engine = make_engine(server)
        ctx = llm.ChatContext()
        ctx.add_message(role="user", content="Read me the report.")
        said = "".join([t async for t in engine.run(ctx, [long_report])])
        assert said == "Fine."
        speaking = [r.body for r in server.requests[1:]]
        assert all(b.get("tool_choice") == "none" and "tools" in b for b in speaking)
        results = [next(m for m in b["messages"] if m["role"] == "tool") for b in speaking]
        lengths = [len(r["content"]) for r in results]
        assert lengths == sorted(lengths, reverse=True) and len(lengths) >= 3
        assert results[-1]["content"].startswith("line of the report.")
        await engine.llm.aclose()


@pytest.mark.parametrize("server_kind", list(TOOL_REFUSALS))
async def test_a_server_that_says_it_refuses_tools_is_asked_without_them_from_then_on(
    server_kind: str,
) -> None:
    def answer(body: dict[str, Any]) -> Reply:
        if "tools" in body:
            return Reply.of(Status(400, TOOL_REFUSALS[server_kind]))
        return text_reply("Fine.")

    with ScriptedLLMServer(default=answer) as server:
        engine = make_engine(server)
        assert await say(server, engine, _short()) == "Fine."
        assert await say(server, engine, _short()) == "Fine."
        assert [("tools" in r.body) for r in server.requests] == [True, False, False]
        await engine.llm.aclose()


async def test_a_400_that_does_not_say_why_is_answered_without_tools_but_not_remembered() -> None:
    with ScriptedLLMServer() as server:
        server.script(Reply.of(Status(400)))  # {"error": {"message": "scripted failure"}}
        engine = make_engine(server)
        assert await say(server, engine, _short()) == "Default reply."
        assert await say(server, engine, _short()) == "Default reply."
        assert [("tools" in r.body) for r in server.requests] == [True, False, True]
        await engine.llm.aclose()
