"""`voice-agent chat`: the same engine and tools as voice, over stdin/stdout.

One user turn per input line; the reply streams to stdout as it is generated,
flushed per delta, on one line (its own newlines become spaces) that a newline ends.
Logs go to stderr. At a terminal, a prompt asks for each turn.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import uuid
from typing import TextIO

from livekit.agents import llm

from agent.commands.oneline import OneLine
from agent.config.resolved import Config
from agent.engine.history import bound_history
from agent.ops.logging import bind_context, get_logger
from agent.tools import aclose_tools, setup_tools
from agent.wiring import build_engine, build_history_limits, build_llm, build_tools

log = get_logger("agent.commands.chat")

PROMPT = "> "


def _lines(stream: TextIO) -> asyncio.Queue[str]:
    """Lines of `stream` as they come, then "" at its end.

    Read on a daemon thread: a blocking `readline` in `asyncio.to_thread` would keep the
    process alive after Ctrl-C until the user typed one more line. Bytes are decoded
    here as UTF-8 with undecodable ones replaced, whatever the locale: a strict decoder
    would kill the thread (and `chat` would wait forever), a lenient locale one would
    put lone surrogates into the history that no request can carry. Whatever happens,
    the end of input is always delivered.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str] = asyncio.Queue()
    binary = getattr(stream, "buffer", None)

    def read() -> None:
        try:
            while True:
                raw = binary.readline() if binary is not None else stream.readline()
                if not raw:
                    return
                line = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
                loop.call_soon_threadsafe(queue.put_nowait, line)
        except Exception as e:  # an unreadable stdin ends the chat, never hangs it
            log.warning("stdin could not be read; ending the chat", error_type=type(e).__name__)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, "")

    threading.Thread(target=read, name="chat-stdin", daemon=True).start()
    return queue


async def run_chat(
    config: Config, *, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout
) -> int:
    settings = config.settings
    turn_llm = build_llm(config)
    engine = build_engine(settings, turn_llm)
    tools = build_tools(config)
    limits = build_history_limits(settings)
    history = llm.ChatContext()
    history.add_message(role="system", content=settings.instructions)
    with bind_context(session_id=uuid.uuid4().hex[:12], mode="chat"):
        try:
            await setup_tools(tools)
            log.info("chat started", backend=turn_llm.label)
            lines = _lines(stdin)
            prompt = PROMPT if stdin.isatty() else ""
            stdout.write(prompt)
            stdout.flush()
            while line := await lines.get():
                user_text = line.strip()
                if not user_text:
                    stdout.write(prompt)
                    stdout.flush()
                    continue
                history.add_message(role="user", content=user_text)
                bound_history(history, limits)
                turn = engine.run(history, tools)
                one_line = OneLine()
                async for text in turn:
                    stdout.write(one_line.feed(text))
                    stdout.flush()
                stdout.write("\n" + prompt)
                stdout.flush()
                history.items.extend(turn.new_items)
                history.add_message(role="assistant", content=turn.text)
        finally:
            await aclose_tools(tools)
            await turn_llm.aclose()
        log.info(
            "chat ended", turns=sum(1 for i in history.items if getattr(i, "role", None) == "user")
        )
    return 0
