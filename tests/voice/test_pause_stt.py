"""Transcribing at each pause loses no word and doubles none: the stitched transcript of the
bench's paused questions matches Whisper's one-shot transcript of the same audio.

Real parts: espeak-ng speech with SSML pauses, the real silero VAD with the short silence
window the end-of-turn model runs with, the real Whisper server (tiny.en).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import APIConnectOptions, stt, utils
from livekit.agents.language import LanguageCode
from livekit.agents.vad import VADEvent, VADEventType

from agent.config.settings import MODEL_MIN_SILENCE
from agent.voice.pause_stt import PauseTranscriber, segmenter_for
from agent.voice.stitching import word_distance
from agent.voice.whole_turn import TurnBuffer
from providers import STTOptions, build_stt
from testing.audio_io import PAUSED_QUESTIONS, SAMPLE_RATE, espeak_to_wav, wav_frames, words_of
from testing.servers.whisper_server import WhisperServer
from testing.stt_doubles import TurnSTT, speech_end, vad_event

pytestmark = pytest.mark.timeout(300)
# Whisper on a busy CPU can take seconds per request: wait rather than retry
PATIENT = APIConnectOptions(max_retry=0, timeout=60)


async def _stitched(engine: stt.STT[Any], vad: Any, frames: list[rtc.AudioFrame]) -> list[str]:
    stream = PauseTranscriber(stt_engine=engine, vad=vad).stream(conn_options=PATIENT)
    for frame in frames:
        stream.push_frame(frame)
    stream.end_input()
    return [
        ev.alternatives[0].text
        async for ev in stream
        if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT
    ]


async def test_stitched_transcript_matches_one_shot(
    whisper_server: WhisperServer, tmp_path: Path
) -> None:
    from livekit.plugins import silero

    vad = silero.VAD.load(min_silence_duration=MODEL_MIN_SILENCE)
    engine = build_stt(STTOptions(base_url=whisper_server.base_url, model="tiny.en"))
    errors = words = split = 0
    report = []
    for i, question in enumerate(PAUSED_QUESTIONS):
        frames = wav_frames(espeak_to_wav(question, tmp_path / f"q{i}.wav"))
        whole = utils.merge_frames(frames)
        one_shot = (await engine.recognize(buffer=whole, conn_options=PATIENT)).alternatives[0]
        segments = await _stitched(engine, vad, frames)
        reference, stitched = words_of(one_shot.text), words_of(" ".join(segments))
        errors += word_distance(reference, stitched)
        words += len(reference)
        split += len(segments) > 1
        report.append(f"{one_shot.text!r} vs {segments!r}")
    await engine.aclose()
    detail = "\n".join(report)
    # the pauses (300-900 ms) are longer than the VAD's 0.25 s window: most questions were
    # really cut in two, or this test would prove nothing
    assert split >= len(PAUSED_QUESTIONS) - 1, detail
    assert errors / words <= 0.1, f"WER {errors}/{words}\n{detail}"


def test_word_distance_counts_substitutions_insertions_and_deletions() -> None:
    assert word_distance(["a", "b", "c"], ["a", "b", "c"]) == 0
    assert word_distance(["a", "b", "c"], ["a", "b", "b", "c"]) == 1  # a doubled word
    assert word_distance(["a", "b", "c"], ["a", "c"]) == 1  # a lost word
    assert word_distance(["a", "b"], ["x", "y"]) == 2


# --- no onset lost, whatever the silence window -----------------------------------------

ONSETS = (
    "Sure.",
    "Thursday.",
    "Five.",
    'Sure. <break time="700ms"/> Thursday works for me. <break time="600ms"/> Fine, thanks.',
    'Hello. <break time="400ms"/> Seven, please.',
)
"""Soft onsets (fricatives) that silero reports late, alone and after pauses."""


async def _cuts(frames: list[rtc.AudioFrame], silence: float) -> list[bytes]:
    """The audio of each segment the real silero VAD with this silence window cuts."""
    from livekit.plugins import silero

    vad = silero.VAD.load(min_silence_duration=silence)
    segmenter = segmenter_for(vad)
    stream = vad.stream()
    for frame in frames:
        stream.push_frame(frame)
    stream.end_input()
    cuts = [
        b"".join(bytes(f.data) for f in cut.frames)
        async for ev in stream
        if (cut := segmenter.feed(ev)) is not None
    ]
    await stream.aclose()
    return cuts


def _uncovered_speech(pcm: bytes, cuts: list[bytes]) -> list[int]:
    """Samples of speech (above 1% of the peak) that are in no segment."""
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.int32)
    covered = np.zeros(len(samples), dtype=bool)
    for cut in cuts:
        at = pcm.find(cut)
        assert at >= 0 and at % 2 == 0, "a segment is not a stretch of the input"
        covered[at // 2 : (at + len(cut)) // 2] = True
    speech = np.abs(samples) > 0.01 * np.abs(samples).max()
    return np.flatnonzero(speech & ~covered).tolist()


@pytest.mark.parametrize("silence", [0.05, 0.1, 0.15, 0.2])
async def test_no_onset_is_cut_off_before_the_stt_at_any_silence_window(
    silence: float, tmp_path: Path
) -> None:
    lost = []
    for i, text in enumerate(ONSETS):
        frames = wav_frames(espeak_to_wav(text, tmp_path / f"{i}.wav"))
        pcm = b"".join(bytes(f.data) for f in frames)
        cuts = await _cuts(frames, silence)
        assert cuts, f"the VAD heard no speech in {text!r}"
        if missing := _uncovered_speech(pcm, cuts):
            first_ms = missing[0] * 1000 // SAMPLE_RATE
            lost.append(f"{text!r}: {len(missing)} samples of speech lost, from {first_ms} ms")
    assert not lost, "\n".join(lost)


# --- long stretches of speech are sent in bounded pieces --------------------------------


class RecordingSTT(stt.STT[Literal["never"]]):
    """Answers every request with its number, and remembers how long each one's audio was."""

    def __init__(self) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self.seconds: list[float] = []

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: Any = None,
        conn_options: APIConnectOptions = PATIENT,
    ) -> stt.SpeechEvent:
        self.seconds.append(utils.merge_frames(buffer).duration)
        text = f"part {len(self.seconds)}"
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(language=LanguageCode("en"), text=text)],
        )


async def test_speech_without_a_pause_goes_to_the_stt_in_bounded_pieces(tmp_path: Path) -> None:
    from livekit.plugins import silero

    # no punctuation: espeak-ng reads it without a pause the VAD would cut at
    text = " ".join(["the quick brown fox jumps over the lazy dog and runs away"] * 3)
    frames = wav_frames(espeak_to_wav(text, tmp_path / "long.wav"))
    recorder = RecordingSTT()
    owner = PauseTranscriber(
        stt_engine=recorder, vad=silero.VAD.load(min_silence_duration=0.2), max_segment=3.0
    )
    stream = owner.stream()
    for frame in frames:
        stream.push_frame(frame)
    stream.end_input()
    events = [ev async for ev in stream]
    finals = [
        e.alternatives[0].text for e in events if e.type == stt.SpeechEventType.FINAL_TRANSCRIPT
    ]
    ends = [e for e in events if e.type == stt.SpeechEventType.END_OF_SPEECH]
    assert len(recorder.seconds) >= 3, recorder.seconds  # about 9 s of speech
    assert max(recorder.seconds) <= 3.0 + 0.032
    # cut while the speech went on: no end of speech for those, every transcript out in order
    assert len(ends) < len(recorder.seconds)
    assert finals == [f"part {i}" for i in range(1, len(recorder.seconds) + 1)]
    assert not await asyncio.wait_for(owner.settled(), 5)


# --- an STT in the worker hears the whole turn again at each pause -----------------------


async def _whole_turn(
    engine: stt.STT[Any], frames: list[rtc.AudioFrame]
) -> tuple[PauseTranscriber, list[str]]:
    from livekit.plugins import silero

    from agent.voice.turn_detection import TRANSCRIPT_SILENCE

    owner = PauseTranscriber(
        stt_engine=engine,
        vad=silero.VAD.load(min_silence_duration=TRANSCRIPT_SILENCE),
        whole_turn=True,
    )
    stream = owner.stream(conn_options=PATIENT)
    for frame in frames:
        stream.push_frame(frame)
    stream.end_input()
    finals = [
        ev.alternatives[0].text
        async for ev in stream
        if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT
    ]
    return owner, finals


async def test_in_the_worker_each_pause_sends_the_turn_from_its_start(tmp_path: Path) -> None:
    question = 'What is the capital of <break time="600ms"/> Australia?'
    frames = wav_frames(espeak_to_wav(question, tmp_path / "q.wav"))
    end = speech_end(frames)
    engine = TurnSTT(cut=end - 0.5, short="What is the capital of", long=plain(question))
    owner, finals = await _whole_turn(engine, frames)
    # one request at the pause, one at the end (and perhaps one dropped: the user went on)
    assert len(engine.seconds) >= 2, engine.seconds
    # every request starts where the turn starts: the last one holds all of its speech
    assert engine.seconds == sorted(engine.seconds)
    assert engine.seconds[-1] >= end, (engine.seconds, end)
    # words that cannot end a turn are held back: the end gives the whole turn at once
    assert finals == ["What is the capital of Australia?"]
    assert not await asyncio.wait_for(owner.settled(), 5)


async def test_a_comma_at_the_end_of_a_pass_is_not_taken_for_speech_cut_off(
    tmp_path: Path,
) -> None:
    # Moonshine ends a clip with a comma whatever the speech did: read as cut off, the turn
    # would wait out the longest endpointing delay
    frames = wav_frames(espeak_to_wav("Moon from the earth.", tmp_path / "q.wav"))
    _, finals = await _whole_turn(TurnSTT(cut=0.0, short="", long="Moon from the earth,"), frames)
    assert finals == ["Moon from the earth"]


async def test_held_back_words_are_given_when_the_user_says_no_more(tmp_path: Path) -> None:
    from livekit.plugins import silero

    frames = wav_frames(espeak_to_wav("What is the capital of", tmp_path / "q.wav"))
    engine = TurnSTT(cut=0.0, short="", long="What is the capital of")
    owner = PauseTranscriber(
        stt_engine=engine, vad=silero.VAD.load(min_silence_duration=0.2), whole_turn=True
    )
    stream = owner.stream(conn_options=PATIENT)
    for frame in frames:
        stream.push_frame(frame)
    kinds = []
    async with asyncio.timeout(30):  # the input stays open: the user is silent, not gone
        async for ev in stream:
            kinds.append(ev.type)
            if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
                assert ev.alternatives[0].text == "What is the capital of"
                break
    # shown as it was heard, given once no speech followed (livekit then waits its longest)
    assert stt.SpeechEventType.INTERIM_TRANSCRIPT in kinds
    stream.end_input()
    await stream.aclose()


async def test_the_last_pass_over_the_whole_turn_replaces_the_pieces_given(
    tmp_path: Path,
) -> None:
    question = 'What is the capital of <break time="600ms"/> Australia?'
    frames = wav_frames(espeak_to_wav(question, tmp_path / "q.wav"))
    # cut off at the pause, the model heard a whole (wrong) question; the whole turn it
    # hears right
    short = "What is the cap it all?"
    engine = TurnSTT(cut=speech_end(frames) - 0.5, short=short, long=plain(question))
    owner, finals = await _whole_turn(engine, frames)
    assert finals[0] == short and len(finals) == 2, finals
    committed = " ".join(finals)
    assert owner.take_turn_transcript(committed) == "What is the capital of Australia?"
    # once: the next speech is a new turn
    assert owner.take_turn_transcript(committed) is None


async def test_a_turn_committed_on_other_words_keeps_them(tmp_path: Path) -> None:
    question = 'What is the capital of <break time="600ms"/> Australia?'
    frames = wav_frames(espeak_to_wav(question, tmp_path / "q.wav"))
    engine = TurnSTT(
        cut=speech_end(frames) - 0.5, short="What is the cap it all?", long=plain(question)
    )
    owner, _ = await _whole_turn(engine, frames)
    # livekit committed only the words before the pause (the turn ended there): the pass
    # over the whole turn is not what was committed, and must not stand in for it
    assert owner.take_turn_transcript("What is the cap it all?") is None


def plain(ssml: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", ssml)).strip()


def _vad_event(kind: VADEventType, seconds: float = 0) -> VADEvent:
    half = SAMPLE_RATE // 2
    frame = rtc.AudioFrame(
        b"\x01\x00" * half, sample_rate=SAMPLE_RATE, num_channels=1, samples_per_channel=half
    )
    return vad_event(kind, [frame] * int(seconds * 2))


def test_a_turn_committed_while_the_user_speaks_again_keeps_only_the_new_speech() -> None:
    turn = TurnBuffer(turn_gap=3.0)
    for ev in (
        _vad_event(VADEventType.INFERENCE_DONE, 2),  # silence: half a second of it is kept
        _vad_event(VADEventType.START_OF_SPEECH),
        _vad_event(VADEventType.INFERENCE_DONE, 2),
        _vad_event(VADEventType.END_OF_SPEECH),
        _vad_event(VADEventType.INFERENCE_DONE, 1),  # a pause within the turn
        _vad_event(VADEventType.START_OF_SPEECH),
    ):
        turn.feed(ev)
    assert not turn.opened  # the pause did not start a new turn
    turn.feed(_vad_event(VADEventType.INFERENCE_DONE, 1))
    assert turn.audio().duration == 4.5
    # livekit committed the words before the pause while these were being said: they open
    # the next turn, which does not hear the committed ones again
    turn.close()
    assert turn.audio().duration == 1.5
    turn.feed(_vad_event(VADEventType.END_OF_SPEECH))
    turn.close()
    assert turn.audio().duration == 0.5
    turn.feed(_vad_event(VADEventType.START_OF_SPEECH))
    assert turn.opened
