"""What is said in the room tests: the questions, and the scripted LLM's answers to them.

The LLM server answers by what it is asked (`answer`), not from a queue of replies:
preemptive generation and STT at pauses send it requests that are later dropped, and
one worker serves every test, so a reply must never depend on how many came before.
"""

from __future__ import annotations

from typing import Any

from testing.servers.openai_server import Reply, ToolCall, text_reply, tool_reply

TOKYO = "What time is it in Tokyo?"
TOKYO_ANSWER = "It is nine in the evening in Tokyo."
CAPITAL = "What is the capital of France?"
CAPITAL_ANSWER = "The capital of France is Paris."
CLOCK = "Please look at the clock for me."
CLOCK_ANSWER = "I looked at the clock for you, it is evening."
STORY = "Tell me a long story."
STORY_ANSWER = (
    "Once upon a time there was a small robot who lived in a quiet village by the sea, "
    "and every morning it walked along the shore collecting shells and counting the waves, "
    "and it talked to the seagulls about the weather and the tides and the ships that "
    "sailed far away beyond the horizon, toward lands that nobody in the village had ever "
    "seen, and the robot dreamed that one day it would sail there too."
)
STOP = "Stop, stop talking please."
STOP_ANSWER = "Okay, I will stop."


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


def answer(body: dict[str, Any]) -> Reply:
    """The scripted LLM: a tool call for the clock question (then its answer once the
    tool's result is in), otherwise an answer chosen by the question's words."""
    messages = body.get("messages") or []
    if messages and messages[-1].get("role") == "tool":
        return text_reply(CLOCK_ANSWER)
    asked = next(
        (_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    ).lower()
    if "clock" in asked:
        return tool_reply(ToolCall("get_current_time", {"timezone": "Asia/Tokyo"}))
    if "story" in asked:
        return text_reply(STORY_ANSWER)
    if "stop" in asked:
        return text_reply(STOP_ANSWER)
    if "capital" in asked or "france" in asked:
        return text_reply(CAPITAL_ANSWER)
    return text_reply(TOKYO_ANSWER)
