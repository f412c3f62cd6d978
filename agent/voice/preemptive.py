"""Safe preemptive generation: only read-only tools run before the user's turn is confirmed.

With preemptive generation livekit runs `llm_node` on the transcript before the end of the
turn is confirmed, holds its words (they are spoken only once the reply's speech is
scheduled) and throws the attempt away if the user goes on. livekit defers its own tool
execution until then, but our turn engine runs tools inside `llm_node`: a webhook that turns
the lights on must not fire for a guess that is then discarded, and fire again for the real
turn. `SpeechConfirmationGate` is what the engine awaits before each tool: a tool marked
read-only (`mark_read_only`: the built-in clock, MCP tools annotated `readOnlyHint`,
webhooks with `read_only: true`) runs at once; any other waits until livekit schedules the
reply's speech, and never runs if the attempt is discarded first.
"""

from __future__ import annotations

import asyncio

from livekit.agents.voice import SpeechHandle

from agent.ops.logging import get_logger
from agent.tools.read_only import is_read_only

log = get_logger("agent.voice.preemptive")


def current_speech() -> SpeechHandle | None:
    """The speech handle livekit runs the current `llm_node` for, if any.

    livekit keeps it in a context variable that every task of the reply inherits; it
    offers no public accessor, so this is the one place that reads it (None in text
    mode without a session, where nothing is preemptive).
    """
    from livekit.agents.voice.agent_activity import _SpeechHandleContextVar

    return _SpeechHandleContextVar.get(None)


class ToolHeldBack(asyncio.CancelledError):
    """The reply was discarded before its turn was confirmed: its tool never runs."""


class SpeechConfirmationGate:
    """Awaited by the turn engine before it runs a tool (see the module docstring)."""

    async def wait(self, name: str, tool: object | None) -> None:
        if tool is not None and is_read_only(tool):
            return
        speech = current_speech()
        if speech is None or speech.scheduled:
            return
        log.info("tool held until the turn is confirmed", tool=name)
        scheduled = asyncio.ensure_future(speech._wait_for_scheduled())
        try:
            await speech.wait_if_not_interrupted([scheduled])
        finally:
            scheduled.cancel()
        if not speech.scheduled:
            log.info("turn not confirmed; tool not run", tool=name)
            raise ToolHeldBack(name)
