"""How often the real model calls the clock when asked the time, under given instructions.

`python -m testing.real_model_trials` asks the clock question in ten wordings (sampling is
greedy, so the wording is what varies between tries), under the old default
instructions and the current ones, with each chat template of `testing.servers.llama_server`,
and prints the share of tries whose first pass called `get_current_time`: as a parsed
tool call, or written as text that the engine recovers. Only the first pass is run (the
one where the model decides), through our LLM client with the tool offered as in a turn.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from livekit.agents import llm

from agent.config.settings import DEFAULT_INSTRUCTIONS
from agent.tools import get_current_time
from providers.text_tool_calls import parse_text_tool_calls
from testing.engine import make_llm
from testing.real_model import model_path
from testing.servers.llama_server import OWN_TEMPLATE, TOOL_CALL_TEMPLATE, LlamaServer

OLD_INSTRUCTIONS = (
    "You are a helpful voice assistant. Your replies are spoken aloud, so keep them short "
    "and conversational, without lists, markdown, emojis or code."
)
"""The default instructions before they asked for tools (up to issue 22)."""

QUESTIONS = (
    "What time is it in Tokyo right now?",
    "What's the time in Tokyo?",
    "Can you tell me the current time in Tokyo?",
    "What time is it now in Tokyo, Japan?",
    "Do you know what time it is in Tokyo?",
    "Tell me the time in Tokyo right now.",
    "I need the current time in Tokyo, please.",
    "Hey, what's the local time in Tokyo at the moment?",
    "What is the current time in Tokyo?",
    "Quick question: what time is it over in Tokyo?",
)

CLOCK = "get_current_time"
MAX_CHARS = 400
"""Content past this without a call is taken as the model's answer (a call comes first)."""


async def calls_the_clock(base_url: str, instructions: str, question: str) -> bool:
    """Whether the model's first pass calls the clock (parsed, or as text)."""
    ctx = llm.ChatContext()
    ctx.add_message(role="system", content=instructions)
    ctx.add_message(role="user", content=question)
    client = make_llm(base_url, timeout=300)
    text = ""
    try:
        async with client.chat(chat_ctx=ctx, tools=[get_current_time]) as stream:
            async for chunk in stream:
                if chunk.delta is None:
                    continue
                text += chunk.delta.content or ""
                if any(c.name == CLOCK for c in chunk.delta.tool_calls) or _written_call(text):
                    return True
                if len(text) > MAX_CHARS:  # an answer, not a call: no need to hear it out
                    return False
    finally:
        await client.aclose()
    return False


def _written_call(text: str) -> bool:
    return any(c.name == CLOCK for c in parse_text_tool_calls(text, {CLOCK}))


async def main() -> None:
    templates: dict[str, Path | None] = {"own": OWN_TEMPLATE, "tool-calls": TOOL_CALL_TEMPLATE}
    variants = {"old": OLD_INSTRUCTIONS, "new": DEFAULT_INSTRUCTIONS}
    for template_name, template in templates.items():
        with LlamaServer(model_path(), chat_template=template) as server:
            for variant, instructions in variants.items():
                calls = []
                for question in QUESTIONS:
                    started = time.monotonic()
                    calls.append(await calls_the_clock(server.base_url, instructions, question))
                    took = time.monotonic() - started
                    print(f"  {calls[-1]!s:5} {took:5.1f} s  {question}", flush=True)
                print(
                    f"template={template_name} instructions={variant}: "
                    f"{sum(calls)}/{len(calls)} called the clock "
                    f"({''.join('x' if c else '.' for c in calls)})",
                    flush=True,
                )


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
