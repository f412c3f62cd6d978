"""Cutting what the VAD hears into segments for the STT at pauses (agent/voice/pause_stt.py)."""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass, field

from livekit import rtc
from livekit.agents.vad import VAD, VADEvent, VADEventType, VADStream

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


async def feed_vad(inputs: AsyncIterable[object], vad_stream: VADStream) -> None:
    """What a recognize stream was given (frames, and its flush marks) into its VAD's
    stream, then the end of input."""
    async for item in inputs:
        if isinstance(item, rtc.AudioFrame):
            vad_stream.push_frame(item)
        else:  # `RecognizeStream._FlushSentinel`
            vad_stream.flush()
    vad_stream.end_input()
