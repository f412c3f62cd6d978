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
sends them).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from livekit import rtc
from livekit.agents import APIConnectOptions, stt, utils
from livekit.agents.stt.stream_adapter import DEFAULT_STREAM_ADAPTER_API_CONNECT_OPTIONS
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr
from livekit.agents.vad import VAD, VADEvent, VADEventType

from agent.voice.stitching import words_after
from agent.voice.turn_audio import TurnAudio

LEAD_IN_SECONDS = 0.2
"""Silence a segment shares with the one before it (the end of the pause that cut them
apart): Whisper transcribes a clip that starts mid-word poorly. Never more than the VAD's
silence window, so that it is silence for certain."""
PRE_SPEECH_SECONDS = 0.5
"""Audio kept while no one speaks. Silero reports speech 120-230 ms after it starts (more
on a soft onset: "Thursday", "Sure"), whatever its silence window; all of it, and some
silence before it, must reach the STT."""


MAX_SEGMENT_SECONDS = 15.0
"""The longest stretch of speech sent as one request. Without a pause (a TV talking in the
background) a segment would grow without end, 5.8 MB a minute at 48 kHz, and go to the
STT whole."""
QUIET_SEARCH_SECONDS = 1.0
"""A stretch that long is cut at the quietest frame of its last second: most likely a gap
between two words."""


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
    ) -> None:
        """`max_segment`: the longest stretch of speech sent as one request (seconds).
        `stitch`: send a segment behind the one before it, after a short pause, and keep only
        the new words (for Whisper, which hears a clip that starts mid-sentence poorly; an
        STT that hears the context differently each time, as Moonshine does, repeats it)."""
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
        self._vad = vad
        self.turn_audio = turn_audio
        """Given every VAD event, for an end-of-turn model that listens (Smart Turn)."""
        self._max_segment = max_segment
        self._stitch = stitch
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

    def _hold(self) -> None:
        self._unsettled += 1
        self._settled.clear()

    def _release(self) -> None:
        self._unsettled = max(0, self._unsettled - 1)
        if self._unsettled == 0:
            self._settled.set()

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
        return _PauseStream(self, language=language, conn_options=conn_options)

    def prewarm(self) -> None:
        self._stt.prewarm()

    def _forward_metrics(self, *args: Any, **kwargs: Any) -> None:
        self.emit("metrics_collected", *args, **kwargs)

    async def aclose(self) -> None:
        self._stt.off("metrics_collected", self._forward_metrics)


CONTEXT_GAP_SECONDS = 1.5
"""A segment that starts within this much audio of the previous one is sent with the
previous segment's audio in front: Whisper transcribes "Paris today" alone as "Power is
done", and with the words before it correctly."""


@dataclass(frozen=True, slots=True)
class Cut:
    frames: list[rtc.AudioFrame]
    context: list[rtc.AudioFrame] | None
    """The previous segment, when the user only paused between the two."""
    forced: bool = False
    """Cut because it was `max_segment` long: the speech goes on."""


@dataclass(slots=True)
class Segmenter:
    """Cuts the audio the VAD has seen into segments, each frame in exactly one.

    Fed each VAD event in order; `feed` returns a `Cut` when the VAD reports the end of a
    stretch of speech, or when the stretch reaches `max_segment` seconds. Before speech
    starts only the last `pre_speech` seconds are kept (silence, and speech the VAD has not
    reported yet); after a pause, the next segment starts with the last `lead_in` seconds of
    the one before.
    """

    lead_in: float
    pre_speech: float = PRE_SPEECH_SECONDS
    max_segment: float = MAX_SEGMENT_SECONDS
    frames: list[rtc.AudioFrame] = field(default_factory=list)
    held: float = 0.0
    """Seconds of audio in `frames`."""
    in_speech: bool = False
    previous: list[rtc.AudioFrame] | None = None
    since_cut: float = 0.0
    """Seconds of audio since the last cut (or since the start)."""
    gap_at_start: float = 0.0
    with_context: bool = True
    """Whether a segment after a short pause carries the one before it as `context`."""

    def feed(self, ev: VADEvent) -> Cut | None:
        if ev.type == VADEventType.INFERENCE_DONE:
            fed = [f for f in ev.frames if f.samples_per_channel]
            self.frames.extend(fed)
            added = sum(f.duration for f in fed)
            self.since_cut += added
            self.held += added
            if not self.in_speech:
                self._keep(_last_seconds(self.frames, max(self.lead_in, self.pre_speech)))
            elif self.held >= self.max_segment:
                return self._cut_long()
        elif ev.type == VADEventType.START_OF_SPEECH:
            self.in_speech = True
            self.gap_at_start = self.since_cut
        elif ev.type == VADEventType.END_OF_SPEECH and self.in_speech:
            self.in_speech = False
            segment = self.frames
            close = self._follows_closely()
            cut = Cut(segment, self.previous if close else None)
            # the end of the pause that closed this segment (silence for certain) opens the
            # next one; the segment keeps it too: it is shared silence, not speech
            self._keep(_last_seconds(segment, self.lead_in))
            self.previous = segment
            self.since_cut = 0.0
            return cut
        return None

    def _cut_long(self) -> Cut:
        """The speech so far, up to its quietest recent frame; the rest stays for the next
        segment, which goes without context (the two share no pause)."""
        frames = self.frames
        tail, at = 0.0, len(frames)
        while at > 1 and tail < QUIET_SEARCH_SECONDS:
            at -= 1
            tail += frames[at].duration
        quietest = min(range(at, len(frames)), key=lambda i: _loudness(frames[i]))
        segment = frames[: quietest + 1]
        close = self._follows_closely()
        cut = Cut(segment, self.previous if close else None, forced=True)
        self._keep(frames[quietest + 1 :])
        self.previous = None
        self.since_cut = self.held
        return cut

    def _follows_closely(self) -> bool:
        return (
            self.with_context
            and self.previous is not None
            and self.gap_at_start <= CONTEXT_GAP_SECONDS
        )

    def _keep(self, frames: list[rtc.AudioFrame]) -> None:
        self.frames = frames
        self.held = sum(f.duration for f in frames)


def _loudness(frame: rtc.AudioFrame) -> float:
    """Mean square of the frame's samples (only asked of a second of frames, rarely)."""
    samples = memoryview(bytes(frame.data)).cast("h")
    return sum(x * x for x in samples) / len(samples) if len(samples) else 0.0


def segmenter_for(vad: VAD, *, max_segment: float = MAX_SEGMENT_SECONDS) -> Segmenter:
    """A `Segmenter` for what `vad` reports: its lead-in stays inside the silence window."""
    silence = getattr(vad, "min_silence_duration", None) or LEAD_IN_SECONDS
    return Segmenter(lead_in=min(LEAD_IN_SECONDS, 0.8 * silence), max_segment=max_segment)


def _last_seconds(frames: list[rtc.AudioFrame], seconds: float) -> list[rtc.AudioFrame]:
    kept: list[rtc.AudioFrame] = []
    total = 0.0
    for frame in reversed(frames):
        if total >= seconds:
            break
        if total + frame.duration > seconds:  # keep only the end of this frame
            rest = round((seconds - total) * frame.sample_rate)
            n = frame.num_channels
            data = bytes(frame.data)[-rest * n * 2 :] if rest else b""
            if data:
                kept.append(
                    rtc.AudioFrame(
                        data,
                        sample_rate=frame.sample_rate,
                        num_channels=n,
                        samples_per_channel=rest,
                    )
                )
            break
        kept.append(frame)
        total += frame.duration
    kept.reverse()
    return kept


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
        vad = self._owner._vad
        vad_stream = vad.stream()
        segmenter = segmenter_for(vad, max_segment=self._owner._max_segment)
        segmenter.with_context = self._owner._stitch
        pending: asyncio.Queue[_Request | None] = asyncio.Queue()

        async def forward_input() -> None:
            async for item in self._input_ch:
                if isinstance(item, self._FlushSentinel):
                    vad_stream.flush()
                else:
                    vad_stream.push_frame(item)
            vad_stream.end_input()

        async def cut_segments() -> None:
            try:
                async for ev in vad_stream:
                    if self._owner.turn_audio is not None:
                        self._owner.turn_audio.feed(ev)
                    if ev.type == VADEventType.START_OF_SPEECH and not segmenter.in_speech:
                        self._owner._hold()  # released once its transcript is out
                        self._event_ch.send_nowait(
                            stt.SpeechEvent(stt.SpeechEventType.START_OF_SPEECH)
                        )
                    cut = segmenter.feed(ev)
                    if cut is None:
                        continue
                    if cut.forced:  # a long stretch, cut while the speech goes on
                        self._owner._hold()  # for this request; the speech keeps its own
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
                        self._owner._transcripts += 1
                finally:
                    self._owner._release()  # after the transcript is on its way

        tasks = [
            asyncio.create_task(forward_input(), name="pause_stt.forward_input"),
            asyncio.create_task(cut_segments(), name="pause_stt.cut_segments"),
            asyncio.create_task(emit_in_order(), name="pause_stt.emit_in_order"),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            await utils.aio.cancel_and_wait(*tasks)
            if segmenter.in_speech:
                self._owner._release()
            while not pending.empty():  # requests whose transcripts nobody will read
                if (item := pending.get_nowait()) is not None:
                    self._owner._release()
                    await utils.aio.cancel_and_wait(item[0])
            await vad_stream.aclose()


def listen_on_pauses(
    stt_engine: stt.STT[Any],
    vad: VAD,
    *,
    enabled: bool,
    turn_audio: TurnAudio | None = None,
    stitch: bool = True,
) -> stt.STT[Any]:
    """`stt_engine` transcribed at each pause, when it is a batch STT and `enabled`
    (`turn_audio`: also given the audio the VAD hears; `stitch`: see `PauseTranscriber`)."""
    if not enabled or stt_engine.capabilities.streaming:
        return stt_engine
    return PauseTranscriber(stt_engine=stt_engine, vad=vad, turn_audio=turn_audio, stitch=stitch)


class PauseTimings:
    """For the per-turn latency log: how long after the VAD's end of speech the last
    segment went to the STT (the pause -> STT start stage)."""

    def __init__(self, engine: stt.STT[Any] | None) -> None:
        self._last: float | None = None
        if isinstance(engine, PauseTranscriber):
            engine.on("segment_sent", self._on_sent)

    def _on_sent(self, speech_ended_at: float, sent_at: float) -> None:
        self._last = sent_at - speech_ended_at

    def take_ms(self) -> float | None:
        """The last segment's delay in ms, once: None if none was sent since."""
        last, self._last = self._last, None
        return None if last is None else round(last * 1000, 1)
