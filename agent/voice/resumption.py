"""Speech that resumes as the turn is about to end.

livekit ends a turn the minimum endpointing delay after the VAD's end of speech, unless the
VAD reports speech starting again first. silero reports a start only once
`min_speech_duration` (50 ms) of it is heard, so a user who resumes right at the end of the
delay (a 500 ms pause after "How far away is the") loses that race, and is answered on half
a question. The VAD's own frames show speech one window (32 ms) after it starts.

`Resumption` watches those frames after each end of speech. At the moment the turn would end
(`hold_end`) a frame of speech within the last `RECENT_SPEECH` seconds holds the end back for
up to `CONFIRM_SECONDS`: long enough for the VAD to report the start (livekit then cancels the
end of the turn), short enough that a click that never becomes speech costs only that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from livekit.agents.vad import VADEvent, VADEventType

RECENT_SPEECH = 0.1
"""A frame of speech this recent, when the turn would end, may be speech resuming."""
CONFIRM_SECONDS = 0.1
"""How long the end of a turn waits, then, for the VAD to report the start of speech
(silero: 50 ms of speech, in 32 ms windows)."""


@dataclass(slots=True)
class Resumption:
    """Fed every VAD event of the session's audio, in order."""

    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ended_at: float | None = None
    """When the last stretch of speech ended (livekit's anchor: the VAD's end of speech less
    the silence it waited for); None while speech goes on."""
    speech_heard_at: float | None = field(default=None, repr=False)
    """The newest frame of speech since then."""

    def feed(self, ev: VADEvent) -> None:
        if ev.type == VADEventType.END_OF_SPEECH:
            self.ended_at = self.clock() - ev.silence_duration - ev.inference_duration
            self.speech_heard_at = None
        elif ev.type == VADEventType.START_OF_SPEECH:
            self.ended_at = None
        elif self.ended_at is not None and ev.raw_accumulated_speech > 0:
            # an inference (the other events carry no speech after an end) heard speech
            self.speech_heard_at = self.clock()

    async def hold_end(self, min_delay: float) -> None:
        """Returns when a turn that ends `min_delay` after the end of speech may end: at that
        moment, or `CONFIRM_SECONDS` later if speech may be resuming (the caller is then
        cancelled by livekit if it does)."""
        if self.ended_at is None:
            return  # speaking again, or no end of speech seen: livekit decides
        wait = self.ended_at + min_delay - self.clock()
        if wait > 0:
            await self.sleep(wait)
        heard = self.speech_heard_at
        if heard is not None and self.clock() - heard <= RECENT_SPEECH:
            await self.sleep(CONFIRM_SECONDS)
