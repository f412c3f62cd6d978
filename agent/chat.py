"""`voice-agent chat`: the same engine and tools as voice, over stdin/stdout.

One user turn per input line; the reply streams to stdout as it is generated,
flushed per delta, and ends with a newline. Logs go to stderr.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import TextIO

from livekit.agents import llm

from .assistant import build_engine, build_tools
from .config import Settings
from .logging import bind_context, get_logger

log = get_logger("agent.chat")


async def run_chat(
    settings: Settings, *, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout
) -> int:
    engine = build_engine(settings)
    tools = build_tools(settings)
    history = llm.ChatContext()
    history.add_message(role="system", content=settings.instructions)
    with bind_context(session_id=uuid.uuid4().hex[:12], mode="chat"):
        log.info("chat started", backend=engine.provider.label)
        try:
            while line := await asyncio.to_thread(stdin.readline):
                user_text = line.strip()
                if not user_text:
                    continue
                history.add_message(role="user", content=user_text)
                turn = engine.run(history, tools)
                async for text in turn:
                    stdout.write(text)
                    stdout.flush()
                stdout.write("\n")
                stdout.flush()
                history.items.extend(turn.new_items)
                history.add_message(role="assistant", content=turn.text)
        finally:
            await engine.provider.aclose()
        log.info(
            "chat ended", turns=sum(1 for i in history.items if getattr(i, "role", None) == "user")
        )
    return 0
