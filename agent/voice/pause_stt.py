"""Transcribe while the user pauses: a batch STT streamed one stretch of speech at a time.

livekit's `stt.StreamAdapter` already sends each stretch of speech the VAD delimits to a
batch STT, but it sends what silero's END_OF_SPEECH event carries, and silero starts each
new stretch with the last `prefix_padding_duration` (0.5 s) of the previous buffer. With the
short silence window fast turns need (0.25 s), that half second reaches back into the words
just sent: after a 0.3 s pause the next segment begins with the tail of the previous one, and
Whisper hears a word twice. Here the audio is cut instead: every frame the VAD has seen
belongs to exactly one segment, and a segment only starts with silence (the end of the pause
that cut it), so nothing is lost or said twice.

Each segment is sent as soon as the VAD reports the pause, while the user may still go on;
requests overlap, transcripts come out in the order the segments were spoken, and livekit
joins them into the turn's transcript (one final transcript per segment, as a streaming STT
sends them). An STT in the worker (Moonshine) gets the whole turn so far at each pause
instead (`whole_turn`, agent/voice/whole_turn.py).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any, Literal

from livekit.agents import APIConnectOptions, stt, utils
from livekit.agents.stt.stream_adapter import DEFAULT_STREAM_ADAPTER_API_CONNECT_OPTIONS
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr
from livekit.agents.vad import VAD, VADEventType

from agent.voice.segments import MAX_SEGMENT_SECONDS, Segmenter, feed_vad, segmenter_for
from agent.voice.stitching import same_words, words_after
from agent.voice.turn_audio import TurnAudio
from agent.voice.whole_turn import WholeTurnStream

__all__ = ["PauseTranscriber", "Segmenter", "listen_on_pauses", "segmenter_for"]


class PauseTranscriber(stt.STT[Literal["segment_sent"]]):
    """A streaming STT over a batch `stt` (one backend or livekit's `FallbackAdapter`).

    Emits `segment_sent(speech_ended_at, sent_at)` (wall clock) as each segment goes out.
    """

    def __init__(
        self,
        *,
        stt_engine: stt.STT[Any],
        vad: VAD,
        turn_audio: TurnAudio | None = None,
        max_segment: float = MAX_SEGMENT_SECONDS,
        stitch: bool = True,
        whole_turn: bool = False,
        turn_gap: float = 3.0,
    ) -> None:
        """`max_segment`: the longest stretch of speech sent as one request (seconds).
        `stitch`: send a segment behind the one before it, after a short pause, and keep only
        the new words (for Whisper, which hears a clip that starts mid-sentence poorly).
        `whole_turn`: send the whole turn so far at each pause instead (agent/voice/
        whole_turn.py: for an STT in the worker, fast enough to hear it all again);
        `turn_gap`: there, the silence after which speech starts a new turn."""
        caps = stt_engine.capabilities
        super().__init__(
            capabilities=stt.STTCapabilities(
                streaming=True,
                interim_results=False,
                keyterms=caps.keyterms,
                chat_context=caps.chat_context,
            )
        )
        self._stt = stt_engine
        self.vad = vad
        self.turn_audio = turn_audio
        """Given every VAD event, for an end-of-turn model that listens (Smart Turn)."""
        self._max_segment = max_segment
        self._stitch = stitch
        self.whole_turn = whole_turn
        self.turn_gap = turn_gap
        self.turn_heard: str | None = None
        self.turn_given = ""
        """With `whole_turn`: the words of the current turn given so far."""
        """With `whole_turn`: the current turn's last pass (None: it did not hear all of it)."""
        self._turn_streams: list[WholeTurnStream] = []
        self._stt.on("metrics_collected", self._forward_metrics)
        self._unsettled = 0
        """Streams in speech + segments whose transcript has not come out yet."""
        self._settled = asyncio.Event()
        self._settled.set()
        self._transcripts = 0
        """Final transcripts sent so far."""

    async def settled(self) -> bool:
        """Waits until no speech is being heard or transcribed; True if a transcript came
        out meanwhile (newer than the caller's). A segment whose transcript is empty (a
        cough, a breath) adds no words: waiting for it alone gives False."""
        if self._settled.is_set():
            return False
        before = self._transcripts
        await self._settled.wait()
        return self._transcripts != before

    def hold(self) -> None:
        self._unsettled += 1
        self._settled.clear()

    def release(self) -> None:
        self._unsettled = max(0, self._unsettled - 1)
        if self._unsettled == 0:
            self._settled.set()

    def holding(self) -> bool:
        """With `whole_turn`: words of the current turn are held back (they cannot end
        it), so the words given so far are not the whole turn."""
        return any(stream.holding for stream in self._turn_streams)

    def transcript_out(self) -> None:
        self._transcripts += 1

    def attach_turn(self, stream: WholeTurnStream) -> None:
        self._turn_streams.append(stream)

    def detach_turn(self, stream: WholeTurnStream) -> None:
        if stream in self._turn_streams:
            self._turn_streams.remove(stream)

    def heard_for(self, transcript: str) -> str | None:
        """With `whole_turn`: the last pass over the turn under way, if `transcript` is what
        was given of it and that pass heard it otherwise (None: `transcript` stands)."""
        heard = self.turn_heard
        if heard is None or not same_words(self.turn_given, transcript):
            return None
        return None if same_words(heard, transcript) else heard

    def take_turn_transcript(self, committed: str) -> str | None:
        """The turn is committed with the words `committed`: `heard_for(committed)`, and the
        next speech starts a new turn."""
        heard = self.heard_for(committed)
        self.turn_heard, self.turn_given = None, ""
        for stream in self._turn_streams:
            stream.close_turn()
        return heard

    @property
    def wrapped_stt(self) -> stt.STT[Any]:
        return self._stt

    @property
    def model(self) -> str:
        return self._stt.model

    @property
    def provider(self) -> str:
        return self._stt.provider

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.SpeechEvent:
        return await self._stt.recognize(
            buffer=buffer, language=language, conn_options=conn_options
        )

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.RecognizeStream:
        if self.whole_turn:
            return WholeTurnStream(self, wrapper=self, language=language, conn_options=conn_options)
        return _PauseStream(self, language=language, conn_options=conn_options)

    def prewarm(self) -> None:
        self._stt.prewarm()

    def _forward_metrics(self, *args: Any, **kwargs: Any) -> None:
        self.emit("metrics_collected", *args, **kwargs)

    async def aclose(self) -> None:
        self._stt.off("metrics_collected", self._forward_metrics)


_Request = tuple["asyncio.Task[stt.SpeechEvent]", float, bool]
"""A segment's STT request, the end of its speech, whether it carries context audio."""


class _PauseStream(stt.RecognizeStream):
    def __init__(
        self,
        owner: PauseTranscriber,
        *,
        language: NotGivenOr[str],
        conn_options: APIConnectOptions,
    ) -> None:
        # the wrapped STT retries (or its fallback chain moves on); this stream does not
        super().__init__(stt=owner, conn_options=DEFAULT_STREAM_ADAPTER_API_CONNECT_OPTIONS)
        self._owner = owner
        self._language = language
        self._inner_conn_options = conn_options

    async def _metrics_monitor_task(self, event_aiter: Any) -> None:
        async for _ in event_aiter:  # metrics come from the wrapped STT's requests
            pass

    async def _run(self) -> None:
        vad = self._owner.vad
        vad_stream = vad.stream()
        segmenter = segmenter_for(vad, max_segment=self._owner._max_segment)
        segmenter.with_context = self._owner._stitch
        pending: asyncio.Queue[_Request | None] = asyncio.Queue()

        async def cut_segments() -> None:
            try:
                async for ev in vad_stream:
                    if self._owner.turn_audio is not None:
                        self._owner.turn_audio.feed(ev)
                    if ev.type == VADEventType.START_OF_SPEECH and not segmenter.in_speech:
                        self._owner.hold()  # released once its transcript is out
                        self._event_ch.send_nowait(
                            stt.SpeechEvent(stt.SpeechEventType.START_OF_SPEECH)
                        )
                    cut = segmenter.feed(ev)
                    if cut is None:
                        continue
                    if cut.forced:  # a long stretch, cut while the speech goes on
                        self._owner.hold()  # for this request; the speech keeps its own
                        ended_at = time.time()
                    else:
                        ended_at = time.time() - ev.silence_duration - ev.inference_duration
                        self._event_ch.send_nowait(
                            stt.SpeechEvent(
                                stt.SpeechEventType.END_OF_SPEECH, speech_end_time=ended_at
                            )
                        )
                        # sent now, while the user may still go on; requests overlap
                        self._owner.emit("segment_sent", ended_at, time.time())
                    audio = [*(cut.context or []), *cut.frames]
                    request = asyncio.create_task(
                        self._owner._stt.recognize(
                            buffer=utils.merge_frames(audio),
                            language=self._language,
                            conn_options=self._inner_conn_options,
                        )
                    )
                    pending.put_nowait((request, ended_at, cut.context is not None))
            finally:
                pending.put_nowait(None)

        async def emit_in_order() -> None:
            previous = ""  # what the previous segment added to the transcript
            while (item := await pending.get()) is not None:
                request, ended_at, with_context = item
                try:
                    ev = await request
                    alt = ev.alternatives[0] if ev.alternatives else None
                    text = (alt.text if alt else "").strip()
                    if with_context:  # the previous segment's words are in front: drop them
                        text = words_after(previous, text)
                    previous = text
                    if alt is not None and text:
                        self._event_ch.send_nowait(
                            stt.SpeechEvent(
                                stt.SpeechEventType.FINAL_TRANSCRIPT,
                                alternatives=[replace(alt, text=text)],
                                speech_end_time=ev.speech_end_time or ended_at,
                            )
                        )
                        self._owner.transcript_out()
                finally:
                    self._owner.release()  # after the transcript is on its way

        tasks = [
            asyncio.create_task(
                feed_vad(self._input_ch, vad_stream), name="pause_stt.forward_input"
            ),
            asyncio.create_task(cut_segments(), name="pause_stt.cut_segments"),
            asyncio.create_task(emit_in_order(), name="pause_stt.emit_in_order"),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            await utils.aio.cancel_and_wait(*tasks)
            if segmenter.in_speech:
                self._owner.release()
            while not pending.empty():  # requests whose transcripts nobody will read
                if (item := pending.get_nowait()) is not None:
                    self._owner.release()
                    await utils.aio.cancel_and_wait(item[0])
            await vad_stream.aclose()


def listen_on_pauses(
    stt_engine: stt.STT[Any],
    vad: VAD,
    *,
    enabled: bool,
    turn_audio: TurnAudio | None = None,
    stitch: bool = True,
    whole_turn: bool = False,
    turn_gap: float = 3.0,
) -> stt.STT[Any]:
    """`stt_engine` transcribed at each pause, when it is a batch STT and `enabled`
    (`turn_audio`: also given the audio the VAD hears; the rest: see `PauseTranscriber`)."""
    if not enabled or stt_engine.capabilities.streaming:
        return stt_engine
    return PauseTranscriber(
        stt_engine=stt_engine,
        vad=vad,
        turn_audio=turn_audio,
        stitch=stitch,
        whole_turn=whole_turn,
        turn_gap=turn_gap,
    )
