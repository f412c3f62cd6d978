"""Speech that resumes as the turn is about to end holds the end back (agent/voice/resumption.py).

The moment a turn would end is computed on a clock the test moves; the real silero VAD on
espeak-ng speech shows the premise: after a pause, a window of speech comes before the VAD's
start of speech, which is what livekit waits for to cancel the end of the turn.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from livekit.agents import llm
from livekit.agents.vad import VADEvent, VADEventType

from agent.voice.resumption import CONFIRM_SECONDS, RECENT_SPEECH, Resumption
from agent.voice.turn_detection import TranscriptTurnDetector
from testing.audio_io import espeak_to_wav, wav_frames
from testing.stt_doubles import vad_event

pytestmark = pytest.mark.timeout(60)
MIN_DELAY = 0.5


class Clock:
    """Time that moves only when slept through: each sleep is recorded."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def _watch(clock: Clock) -> Resumption:
    return Resumption(clock=clock, sleep=clock.sleep)


def _end_of_speech(silence: float) -> VADEvent:
    ev = vad_event(VADEventType.END_OF_SPEECH)
    ev.silence_duration = silence
    return ev


async def test_a_turn_ends_at_the_minimum_delay_after_the_end_of_speech() -> None:
    clock = Clock()
    watch = _watch(clock)
    watch.feed(_end_of_speech(silence=0.2))  # the end of speech was 0.2 s ago
    await watch.hold_end(MIN_DELAY)
    assert clock.slept == [pytest.approx(MIN_DELAY - 0.2)]


async def test_speech_heard_just_before_the_end_holds_it_back_for_the_vad_to_confirm() -> None:
    clock = Clock()
    watch = _watch(clock)
    watch.feed(_end_of_speech(silence=0.2))
    clock.now += MIN_DELAY - 0.2 - 0.03
    watch.feed(vad_event(VADEventType.INFERENCE_DONE, speech=0.032))  # one window of it
    await watch.hold_end(MIN_DELAY)
    assert clock.slept == [pytest.approx(0.03), CONFIRM_SECONDS]


async def test_a_click_long_before_the_end_does_not_delay_it() -> None:
    clock = Clock()
    watch = _watch(clock)
    watch.feed(_end_of_speech(silence=0.2))
    watch.feed(vad_event(VADEventType.INFERENCE_DONE, speech=0.032))
    watch.feed(vad_event(VADEventType.INFERENCE_DONE, silence=0.032))
    await watch.hold_end(MIN_DELAY)
    assert clock.slept == [pytest.approx(MIN_DELAY - 0.2)]
    assert MIN_DELAY - 0.2 > RECENT_SPEECH  # the click was that long before the end


async def test_once_speech_has_started_again_livekit_decides_at_once() -> None:
    clock = Clock()
    watch = _watch(clock)
    watch.feed(_end_of_speech(silence=0.2))
    watch.feed(vad_event(VADEventType.START_OF_SPEECH))
    await watch.hold_end(MIN_DELAY)
    assert clock.slept == []


async def test_the_transcript_detector_answers_finished_at_the_moment_the_turn_ends() -> None:
    clock = Clock()
    watch = _watch(clock)
    detector = TranscriptTurnDetector(resumption=watch, min_delay=MIN_DELAY)
    watch.feed(_end_of_speech(silence=0.2))
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="How far away is her?")
    assert await detector.predict_end_of_turn(ctx) == 1.0
    assert clock.slept == [pytest.approx(MIN_DELAY - 0.2)]
    # an open transcript is answered at once: livekit then waits the maximum delay
    clock.slept.clear()
    ctx.add_message(role="user", content="How far away is the")
    assert await detector.predict_end_of_turn(ctx) == 0.0
    assert clock.slept == []


async def test_silero_hears_resumed_speech_a_window_before_it_reports_its_start(
    silero_vad: object, tmp_path: Path
) -> None:
    """The premise, on real speech: after a 500 ms pause, silero's frames carry speech at
    least one inference before its START_OF_SPEECH, which is when livekit would cancel."""
    from livekit.plugins import silero

    vad = silero.VAD.load(min_silence_duration=0.2)
    wav = espeak_to_wav(
        'How far away is the <break time="500ms"/> moon from the earth?', tmp_path / "q.wav"
    )
    stream = vad.stream()
    for frame in wav_frames(wav):
        stream.push_frame(frame)
    stream.end_input()
    events: list[tuple[VADEventType, float]] = []
    async for ev in stream:
        events.append((ev.type, ev.raw_accumulated_speech))
    await stream.aclose()
    kinds = [kind for kind, _ in events]
    assert kinds.count(VADEventType.START_OF_SPEECH) == 2, "the pause must split the question"
    pause_end = kinds.index(VADEventType.END_OF_SPEECH)
    restart = kinds.index(VADEventType.START_OF_SPEECH, pause_end)
    speech_windows = [
        n
        for n, (kind, speech) in enumerate(events[pause_end:restart], start=pause_end)
        if kind == VADEventType.INFERENCE_DONE and speech > 0
    ]
    assert speech_windows, "no frame of speech came before the VAD's start of speech"
