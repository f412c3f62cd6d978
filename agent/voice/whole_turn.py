"""STT at pauses for an STT in the worker: the whole turn's audio transcribed at each pause.

A server's Whisper costs about a second per request on 2 CPUs, so `pause_stt` sends each
stretch of speech alone (behind the previous one at most). Moonshine in the worker takes
80-130 ms for a whole question, but hears a stretch cut off mid-sentence poorly ("Paris
today" alone, or "What is the capital on?"). Here every request carries the turn's audio so
far, from half a second before its first speech: each pause gives a better transcript of the
whole turn, and the last one is a single pass over all of it.

livekit only appends final transcripts, so each pause emits the words the new pass adds
after those already given (`words_after`), and the turn's last pass is kept
(`PauseTranscriber.heard_for`): the assistant gives the LLM that one pass in place of the
pieces, both in the reply started before the turn is committed and in later turns
(agent/voice/assistant.py says why the message itself keeps the pieces).

The request for the last pause starts early: once the VAD has heard `EARLY_SILENCE` of
silence (well before its silence window closes) the turn so far is sent. If the VAD then
reports the end of speech with no speech heard in between, that request is the pause's;
if the user went on, it is cancelled: one still queued for the STT (Moonshine runs one
request at a time, for every session) never runs, so it does not delay the real pause's
pass; one already running finishes, unread. A stream waits on one early request at most.

When livekit commits the turn (`close_turn`), words held back are dropped (given later,
they would open a user turn of their own), and a pass sent before is not read against the
next turn (its words are the committed turn's: they would be given a second time).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from livekit import rtc
from livekit.agents import stt, utils
from livekit.agents.vad import VAD, VADEvent, VADEventType

from agent.voice.segments import feed_vad
from agent.voice.stitching import words_after
from agent.voice.transcript_ends import transcript_is_open
from agent.voice.turn_audio import TurnAudio

EARLY_SILENCE = 0.06
"""Silence after which the turn so far goes to the STT, before the VAD's window closes."""
PRE_SPEECH_SECONDS = 0.5
"""Audio kept before the turn's first speech (silero reports speech 120-230 ms late)."""
HOLD_SECONDS = 1.0
"""How long words that cannot end a turn ("What is the capital of") wait for more speech
before they are given (livekit then waits out the maximum endpointing delay, counted from
the end of speech, as it would have)."""
MAX_TURN_SECONDS = 20.0
"""A longer turn starts over from its latest stretch (a TV talking without a pause)."""


class TurnOwner(Protocol):
    """What the stream needs of its `PauseTranscriber` (agent/voice/pause_stt.py)."""

    vad: VAD
    turn_gap: float
    turn_audio: TurnAudio | None
    turn_heard: str | None
    turn_given: str

    @property
    def wrapped_stt(self) -> stt.STT[Any]: ...
    def hold(self) -> None: ...
    def release(self) -> None: ...
    def transcript_out(self) -> None: ...
    def attach_turn(self, stream: WholeTurnStream) -> None: ...
    def detach_turn(self, stream: WholeTurnStream) -> None: ...
    def emit(self, event: Any, /, *args: Any) -> None: ...


@dataclass(slots=True)
class TurnBuffer:
    """The audio of the current turn, fed each VAD event in order.

    A turn opens with the first speech after `turn_gap` seconds of silence (or after
    `close`), keeping the `PRE_SPEECH_SECONDS` before it; pauses stay in it.
    """

    turn_gap: float
    frames: list[rtc.AudioFrame] = field(default_factory=list)
    held: float = 0.0
    in_speech: bool = False
    open: bool = False
    silence: float = 0.0
    whole: bool = True
    """Whether `frames` start with the turn (False once a long turn started over)."""
    opened: bool = False
    """The last START_OF_SPEECH fed opened a new turn."""
    since_start: float = 0.0
    """Seconds of audio since the latest stretch of speech began (with its lead-in)."""

    def feed(self, ev: VADEvent) -> None:
        if ev.type == VADEventType.INFERENCE_DONE:
            fed = [f for f in ev.frames if f.samples_per_channel]
            self.frames.extend(fed)
            added = sum(f.duration for f in fed)
            self.held += added
            self.since_start += added
            if not self.in_speech:
                self.silence += added
            if not self.open:
                self._keep_last(PRE_SPEECH_SECONDS)
            elif self.held > MAX_TURN_SECONDS:
                self._keep_last(PRE_SPEECH_SECONDS + (0 if not self.in_speech else 5.0))
                self.whole = False
        elif ev.type == VADEventType.START_OF_SPEECH:
            self.opened = not self.open or self.silence >= self.turn_gap
            if self.opened:
                self._keep_last(PRE_SPEECH_SECONDS + ev.speech_duration)
                self.whole = True
            self.open = self.in_speech = True
            self.silence = 0.0
            self.since_start = PRE_SPEECH_SECONDS + ev.speech_duration
        elif ev.type == VADEventType.END_OF_SPEECH:
            self.in_speech = False

    def close(self) -> None:
        """The turn was committed: the next speech opens a new one (speech already under
        way when it was opens it now)."""
        if self.in_speech:
            self._keep_last(self.since_start)
            self.whole = True
        else:
            self.open = False
            self._keep_last(PRE_SPEECH_SECONDS)

    def audio(self) -> rtc.AudioFrame:
        return utils.merge_frames(self.frames)

    def _keep_last(self, seconds: float) -> None:
        while self.frames and self.held - self.frames[0].duration >= seconds:
            self.held -= self.frames.pop(0).duration


@dataclass(slots=True)
class _Pass:
    """A request for the turn so far: sent in turn `turn_no`, at `sent_at` (wall clock)."""

    task: asyncio.Task[stt.SpeechEvent]
    turn_no: int
    sent_at: float


class WholeTurnStream(stt.RecognizeStream):
    """`PauseTranscriber.stream()` for an STT in the worker (see the module docstring)."""

    def __init__(
        self, owner: TurnOwner, *, wrapper: stt.STT[Any], language: Any, conn_options: Any
    ) -> None:
        """`wrapper`: the `owner` as livekit's STT, whose stream this is."""
        from livekit.agents.stt.stream_adapter import DEFAULT_STREAM_ADAPTER_API_CONNECT_OPTIONS

        # the wrapped STT reports its own errors; this stream does not retry them
        super().__init__(stt=wrapper, conn_options=DEFAULT_STREAM_ADAPTER_API_CONNECT_OPTIONS)
        self._owner = owner
        self._language = language
        self._inner_conn_options = conn_options
        self._turn = TurnBuffer(turn_gap=owner.turn_gap)
        self._given = ""
        """The words of the current turn emitted so far."""
        self._turn_no = 0
        """Counts turns: a pass sent in an earlier one is not read against this one."""
        self._held: asyncio.TimerHandle | None = None
        self._held_final: stt.SpeechEvent | None = None
        """Words that cannot end a turn, given if no speech follows (`HOLD_SECONDS`)."""
        owner.attach_turn(self)

    async def _metrics_monitor_task(self, event_aiter: Any) -> None:
        async for _ in event_aiter:  # metrics come from the wrapped STT's requests
            pass

    @property
    def holding(self) -> bool:
        """Words of the turn are held back: it goes on past those given."""
        return self._held_final is not None

    def close_turn(self) -> None:
        """The turn was committed: the next speech starts a new one (words held back are
        dropped: given now, they would open a user turn of their own)."""
        self._turn.close()
        self._given = ""
        self._turn_no += 1
        self._cancel_held()
        self._held_final = None

    def _on_pass(self, ev: stt.SpeechEvent, ended_at: float, turn_no: int) -> None:
        if turn_no != self._turn_no:
            return  # its turn was committed: these words were (or were passed over)
        alt = ev.alternatives[0] if ev.alternatives else None
        # Moonshine ends a clip with a comma whether or not the speech was cut off there: not
        # the mark of speech cut off that Whisper's is ("Moon from the earth,")
        heard = (alt.text if alt else "").strip().rstrip(",").rstrip()
        if alt is None or not heard:
            if self._held_final is not None:  # a cough: still waiting for more
                self._hold_back(self._held_final)
            return
        # livekit appends: give only what this pass adds to what was given
        text = words_after(self._given, heard) if self._given else heard
        self._owner.turn_heard = heard if self._turn.whole else None
        self._cancel_held()
        self._held_final = None  # this pass has its words too
        if not text:
            return
        final = stt.SpeechEvent(
            stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[replace(alt, text=text)],
            speech_end_time=ev.speech_end_time or ended_at,
        )
        if transcript_is_open(heard, a_spelled_hey=True):  # an STT in the worker: Moonshine
            # cannot end the turn: held back, so that the next pass gives the whole turn at
            # once; given if the user says no more
            self._event_ch.send_nowait(replace(final, type=stt.SpeechEventType.INTERIM_TRANSCRIPT))
            self._hold_back(final)
        else:
            self._give(final)

    def _hold_back(self, final: stt.SpeechEvent) -> None:
        """Holds `final` back; the wait for more speech starts once the user is silent."""
        self._cancel_held()  # one wait at a time: the words come out once
        self._held_final = final
        if not self._turn.in_speech:
            self._held = asyncio.get_running_loop().call_later(HOLD_SECONDS, self._give, final)

    def _give(self, final: stt.SpeechEvent) -> None:
        self._held, self._held_final = None, None
        text = final.alternatives[0].text
        self._given = self._owner.turn_given = f"{self._given} {text}".strip()
        self._event_ch.send_nowait(final)
        self._owner.transcript_out()

    def _cancel_held(self) -> None:
        if self._held is not None:
            self._held.cancel()
            self._held = None

    def _send(self) -> _Pass:
        task = asyncio.create_task(
            self._owner.wrapped_stt.recognize(
                buffer=self._turn.audio(),
                language=self._language,
                conn_options=self._inner_conn_options,
            )
        )
        return _Pass(task, self._turn_no, time.time())

    async def _run(self) -> None:
        owner, vad_stream = self._owner, self._owner.vad.stream()
        pending: asyncio.Queue[tuple[_Pass, float] | None] = asyncio.Queue()
        early: _Pass | None = None
        dropped: set[asyncio.Task[stt.SpeechEvent]] = set()

        def drop(task: asyncio.Task[stt.SpeechEvent]) -> None:
            # cancelled: not run if still queued; if running, it finishes and is not read
            task.cancel()
            dropped.add(task)
            task.add_done_callback(_forget(dropped))

        async def cut_passes() -> None:
            nonlocal early
            try:
                async for ev in vad_stream:
                    if owner.turn_audio is not None:
                        owner.turn_audio.feed(ev)
                    in_speech = self._turn.in_speech
                    self._turn.feed(ev)
                    if ev.type == VADEventType.START_OF_SPEECH and not in_speech:
                        self._cancel_held()  # the next pass will have them, or re-hold them
                        owner.hold()  # released once this pause's transcript is out
                        if self._turn.opened:
                            self._given = owner.turn_given = ""
                            self._turn_no += 1
                        self._event_ch.send_nowait(
                            stt.SpeechEvent(stt.SpeechEventType.START_OF_SPEECH)
                        )
                    elif ev.type == VADEventType.INFERENCE_DONE and self._turn.in_speech:
                        if ev.raw_accumulated_speech > 0 and early is not None:
                            drop(early.task)  # the user went on: its answer is not this pause's
                            early = None
                        elif ev.raw_accumulated_silence >= EARLY_SILENCE and early is None:
                            early = self._send()
                    elif ev.type == VADEventType.END_OF_SPEECH and in_speech:
                        ended_at = time.time() - ev.silence_duration - ev.inference_duration
                        self._event_ch.send_nowait(
                            stt.SpeechEvent(
                                stt.SpeechEventType.END_OF_SPEECH, speech_end_time=ended_at
                            )
                        )
                        if early is not None and early.turn_no != self._turn_no:
                            drop(early.task)  # it heard the turn committed since
                            early = None
                        request, early = early or self._send(), None
                        owner.emit("segment_sent", ended_at, request.sent_at)
                        pending.put_nowait((request, ended_at))
            finally:
                pending.put_nowait(None)

        async def emit_in_order() -> None:
            while (item := await pending.get()) is not None:
                request, ended_at = item
                try:
                    self._on_pass(await request.task, ended_at, request.turn_no)
                finally:
                    owner.release()

        tasks = [
            asyncio.create_task(
                feed_vad(self._input_ch, vad_stream), name="whole_turn.forward_input"
            ),
            asyncio.create_task(cut_passes(), name="whole_turn.cut_passes"),
            asyncio.create_task(emit_in_order(), name="whole_turn.emit_in_order"),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            self._cancel_held()
            await utils.aio.cancel_and_wait(*tasks)
            owner.detach_turn(self)
            if self._turn.in_speech:
                owner.release()
            await utils.aio.cancel_and_wait(*dropped, *([early.task] if early else []))
            while not pending.empty():  # requests whose transcripts nobody will read
                if (item := pending.get_nowait()) is not None:
                    owner.release()
                    await utils.aio.cancel_and_wait(item[0].task)
            await vad_stream.aclose()


def _forget(
    tasks: set[asyncio.Task[stt.SpeechEvent]],
) -> Callable[[asyncio.Task[stt.SpeechEvent]], None]:
    def done(task: asyncio.Task[stt.SpeechEvent]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()  # read: a failed request nobody waits for is not an error

    return done
