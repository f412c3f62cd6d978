"""Audio I/O for an `AgentSession` without a LiveKit room: a paced "microphone" that plays
WAV files in real time, and a "speaker" that records what the agent says."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

from livekit import rtc
from livekit.agents.voice import io

SAMPLE_RATE = 16000
FRAME_MS = 20


PAUSED_QUESTIONS = (
    'What is the capital of <break time="600ms"/> Australia?',
    'How is the weather in <break time="400ms"/> Paris today?',
    'Please set a timer for <break time="800ms"/> ten minutes.',
    'Who wrote the <break time="300ms"/> novel Moby Dick?',
    'What time is it in <break time="900ms"/> Tokyo right now?',
    'How far away is the <break time="500ms"/> moon from the earth?',
    'Can you tell me a <break time="700ms"/> joke about cats?',
    'I would like to book a table <break time="350ms"/> for two people tonight.',
)
"""Questions with a pause in the middle (espeak-ng SSML breaks, 300-900 ms), where a
listener knows the speaker is not done: the bench's and the stitching test's utterances."""
SHORT_REPLIES = (
    "Thank you.",
    "How are you?",
    "No.",
    "Yes, please.",
    "Who are you?",
    "Why is that?",
    "Tell me more.",
    "Yes I do.",
    "Sure, I can.",
)
"""Whole turns that end on a word a question often goes on from ("you", "please", "that",
"more"): the end-of-turn rule must let them end (the bench reports them apart)."""


def plain_text(ssml: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", ssml).split())


def words_of(text: str) -> list[str]:
    """A transcript's words, lower case and without punctuation (for word error rates)."""
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def espeak_to_wav(text: str, path: Path, *, pad_seconds: float = 0.3) -> Path:
    """Speech from espeak-ng, resampled to 16 kHz mono, with `pad_seconds` of silence
    on each side (Whisper transcribes a clip that starts mid-word poorly). Text with
    SSML tags (`<break time="500ms"/>`) is read as SSML."""
    ssml = ["-m"] if "<" in text else []
    raw = subprocess.run(
        ["espeak-ng", "-s", "150", *ssml, "--stdout", text], check=True, capture_output=True
    ).stdout
    src = path.with_suffix(".raw.wav")
    src.write_bytes(raw)
    with wave.open(str(src), "rb") as w:
        rate, pcm = w.getframerate(), w.readframes(w.getnframes())
    resampler = rtc.AudioResampler(rate, SAMPLE_RATE, num_channels=1)
    frames = resampler.push(
        rtc.AudioFrame(pcm, sample_rate=rate, num_channels=1, samples_per_channel=len(pcm) // 2)
    )
    frames += resampler.flush()
    pad = b"\x00\x00" * int(SAMPLE_RATE * pad_seconds)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pad + b"".join(bytes(f.data) for f in frames) + pad)
    return path


def wav_frames(wav: Path, *, trailing_silence: float = 1.0) -> list[rtc.AudioFrame]:
    """The WAV as 20 ms frames, then `trailing_silence` seconds of silence (what lets the
    VAD see the end of the speech)."""
    with wave.open(str(wav), "rb") as w:
        pcm = w.readframes(w.getnframes())
    pcm += b"\x00\x00" * int(SAMPLE_RATE * trailing_silence)
    step = SAMPLE_RATE * FRAME_MS // 1000 * 2
    return [
        rtc.AudioFrame(
            pcm[i : i + step].ljust(step, b"\x00"),
            sample_rate=SAMPLE_RATE,
            num_channels=1,
            samples_per_channel=step // 2,
        )
        for i in range(0, len(pcm), step)
    ]


def _silence() -> rtc.AudioFrame:
    n = SAMPLE_RATE * FRAME_MS // 1000
    return rtc.AudioFrame(
        b"\x00\x00" * n, sample_rate=SAMPLE_RATE, num_channels=1, samples_per_channel=n
    )


class PacedMicrophone(io.AudioInput):
    """Yields 20 ms frames in real time: silence, or the WAV given to `say()`.

    Like a real microphone it never stops: between utterances it sends silence,
    which is what lets the VAD see the end of speech.
    """

    def __init__(self) -> None:
        super().__init__(label="paced-microphone")
        self._queue: asyncio.Queue[rtc.AudioFrame] = asyncio.Queue()
        self._next_at: float | None = None
        self.speech_ended_at: list[float] = []
        """time.time() when the last frame of each utterance was delivered."""
        self._waiters: list[asyncio.Future[None]] = []

    async def say(self, wav: Path) -> None:
        """Queue the WAV's frames; returns when they have all been delivered."""
        with wave.open(str(wav), "rb") as w:
            pcm = w.readframes(w.getnframes())
        step = SAMPLE_RATE * FRAME_MS // 1000 * 2
        done = asyncio.get_running_loop().create_future()
        for i in range(0, len(pcm), step):
            chunk = pcm[i : i + step].ljust(step, b"\x00")
            self._queue.put_nowait(
                rtc.AudioFrame(
                    chunk, sample_rate=SAMPLE_RATE, num_channels=1, samples_per_channel=step // 2
                )
            )
        self._waiters.append(done)
        await done

    def __aiter__(self) -> PacedMicrophone:
        return self

    async def __anext__(self) -> rtc.AudioFrame:
        now = time.monotonic()
        if self._next_at is None:
            self._next_at = now
        if self._next_at > now:
            await asyncio.sleep(self._next_at - now)
        self._next_at += FRAME_MS / 1000
        if self._queue.empty():
            return _silence()
        frame = self._queue.get_nowait()
        if self._queue.empty():
            self.speech_ended_at.append(time.time())
            for fut in self._waiters:
                if not fut.done():
                    fut.set_result(None)
            self._waiters.clear()
        return frame


@dataclass
class Segment:
    frames: list[rtc.AudioFrame] = field(default_factory=list)
    first_frame_at: float | None = None
    interrupted: bool = False

    @property
    def duration(self) -> float:
        return sum(f.duration for f in self.frames)


class RecordingSpeaker(io.AudioOutput):
    """Records every segment the agent plays. Playback is instant: each segment is
    reported started at its first frame and finished when flushed."""

    def __init__(self) -> None:
        super().__init__(
            label="recording-speaker",
            capabilities=io.AudioOutputCapabilities(pause=False),
            sample_rate=None,
        )
        self.segments: list[Segment] = []
        self.finished = asyncio.Event()
        self._current: Segment | None = None

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if self._current is None:
            self._current = Segment(first_frame_at=time.time())
            self.on_playback_started(created_at=self._current.first_frame_at or time.time())
        self._current.frames.append(frame)

    def flush(self) -> None:
        super().flush()
        self._finish(interrupted=False)

    def clear_buffer(self) -> None:
        self._finish(interrupted=True)

    def _finish(self, *, interrupted: bool) -> None:
        seg, self._current = self._current, None
        if seg is None:
            return
        seg.interrupted = interrupted
        self.segments.append(seg)
        position = seg.duration
        # reported from the loop, as a real sink reports after its playout task
        asyncio.get_running_loop().call_soon(
            lambda: self.on_playback_finished(playback_position=position, interrupted=interrupted)
        )
        self.finished.set()

    @property
    def completed(self) -> list[Segment]:
        return [s for s in self.segments if not s.interrupted]
