"""Deadlines on a turn's words: the first spoken word, and the whole turn.

`LLM_TIMEOUT` bounds each read from a backend, and the backend's wait for its first
output, but a turn can still be silent for long: a model that thinks, a backend that
streams SSE keep-alives, tools, several passes. `paced()` watches the words as the turn
produces them: when none has come by the first-word deadline it asks for a filler
(said once); when the whole turn passes its cap it stops the turn with `TurnTimedOut`,
which the engine answers with the apology like any other failure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

__all__ = ["Deadlines", "TurnTimedOut", "paced"]


class TurnTimedOut(TimeoutError):
    """The turn ran past its cap (`AGENT_TURN_TIMEOUT`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Deadlines:
    first_word: float | None = None
    """Seconds from the turn's start to its first word before the filler is asked for."""
    turn: float | None = None
    """Seconds the whole turn may take."""


async def paced(
    words: AsyncGenerator[str, None],
    deadlines: Deadlines,
    *,
    spoke: Callable[[], bool],
    filler: Callable[[], str | None],
    clock: Callable[[], float] = time.monotonic,
) -> AsyncGenerator[str, None]:
    """`words`, with `filler()` yielded once if `spoke()` is still false at the
    first-word deadline, and `TurnTimedOut` raised when the turn's cap passes."""
    started = clock()
    first_word_due = None if deadlines.first_word is None else started + deadlines.first_word
    turn_due = None if deadlines.turn is None else started + deadlines.turn
    pending: asyncio.Task[str] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(words))
            dues = [d for d in (first_word_due, turn_due) if d is not None]
            timeout = max(0.0, min(dues) - clock()) if dues else None
            done, _ = await asyncio.wait({pending}, timeout=timeout)
            if done:
                try:
                    text = pending.result()
                except StopAsyncIteration:
                    return
                pending = None
                yield text
                continue
            now = clock()
            if turn_due is not None and now >= turn_due:
                raise TurnTimedOut(f"the turn took longer than {deadlines.turn:g} s")
            if first_word_due is not None and now >= first_word_due:
                first_word_due = None  # asked once
                if not spoke() and (said := filler()):
                    yield said
    finally:
        if pending is not None and not pending.done():
            # the turn was stopped (its cap, or the listener went away): stop its work too
            pending.cancel()
            await asyncio.wait({pending})
        await words.aclose()
