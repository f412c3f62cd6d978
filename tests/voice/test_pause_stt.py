"""Transcribing at each pause loses no word and doubles none: the stitched transcript of the
bench's paused questions matches Whisper's one-shot transcript of the same audio.

Real parts: espeak-ng speech with SSML pauses, the real silero VAD with the short silence
window the end-of-turn model runs with, the real Whisper server (tiny.en).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from livekit import rtc
from livekit.agents import APIConnectOptions, stt, utils

from agent.config.settings import MODEL_MIN_SILENCE
from agent.voice.pause_stt import PauseTranscriber, word_distance
from providers import STTOptions, build_stt
from testing.audio_io import PAUSED_QUESTIONS, espeak_to_wav, wav_frames
from testing.servers.whisper_server import WhisperServer

pytestmark = pytest.mark.timeout(300)
# Whisper on a busy CPU can take seconds per request: wait rather than retry
PATIENT = APIConnectOptions(max_retry=0, timeout=60)


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


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
        reference, stitched = _words(one_shot.text), _words(" ".join(segments))
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
