"""Smart Turn v3.2 (TURN_DETECTION=smart-turn): the real model, fetched from the pipecat-ai
wheel on the package index, on real espeak-ng speech; its features are pipecat's own.

On espeak-ng speech the model's judgement is noise, so no test here rests on it. Measured
on 10 questions, each whole and cut where a speaker would pause (an SSML break): it told 2
pairs apart on one machine and different ones on another; the same question resampled
twice (one or two least significant bits apart in its digital silence) scored 0.89 and
0.31; with a -60 dBFS noise floor, a question followed by 7 s of silence scored anywhere
from 0.11 to 0.97. What is tested: the file, the features (pipecat's own code on the same
audio), the window, the thread, and the rule that combines its answer with the
transcript's (with its answer given, as no synthetic voice makes it show either one).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import wave
import zipfile
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import llm
from livekit.agents.vad import VADEvent, VADEventType

from agent.config.schema import default_model_cache_dir
from agent.config.settings import ConfigError
from agent.voice.turn_audio import TurnAudio
from agent.voice.turn_detection import SmartTurnDetector
from providers.smart_turn import (
    SMART_TURN_FILE,
    SmartTurn,
    download_wheel,
    fetch_smart_turn,
    last_window,
    shared_smart_turn,
    whisper_features,
)
from testing.audio_io import espeak_to_wav
from testing.engine import settings_for
from testing.stt_doubles import vad_event

pytestmark = pytest.mark.timeout(180)
RATE = 16000
COMPLETE_AND_CUT = [
    ("Can you tell me a joke about cats?", 4),  # "Can you tell me" | "a joke about cats?"
    ("What is the capital of Australia?", 3),  # "What is the" | "capital of Australia?"
]


@pytest.fixture(scope="module")
def model_path() -> Path:
    """The real model, where `voice-agent download-files` puts it (fetched once)."""
    return fetch_smart_turn(default_model_cache_dir(os.environ))


def _speech(wav: Path, *, first_stretch: bool = False) -> np.ndarray:
    """The speech in `wav` without its padding (`first_stretch`: only what comes before its
    first long pause)."""
    with wave.open(str(wav), "rb") as w:
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32)
    x /= 32768.0
    loud = np.flatnonzero(np.abs(x) > 0.01)
    end = loud[-1]
    if first_stretch:
        end = loud[np.flatnonzero(np.diff(loud) > RATE)[0]]  # the 2 s break
    return x[loud[0] : end]


def _as_heard(speech: np.ndarray) -> np.ndarray:
    """What pipecat's analyzer gives the model: 0.5 s before the speech, 0.2 s after."""
    return np.concatenate([np.zeros(RATE // 2), speech, np.zeros(RATE // 5)]).astype(np.float32)


def _pair(text: str, cut_after: int, tmp: Path) -> tuple[np.ndarray, np.ndarray]:
    words = text.split()
    paused = " ".join(words[:cut_after]) + ' <break time="2000ms"/> ' + " ".join(words[cut_after:])
    complete = _speech(espeak_to_wav(text, tmp / "complete.wav", pad_seconds=0))
    cut = _speech(espeak_to_wav(paused, tmp / "paused.wav", pad_seconds=0), first_stretch=True)
    return _as_heard(complete), _as_heard(cut)


def test_short_audio_is_padded_at_the_start(tmp_path: Path) -> None:
    # as pipecat's analyzer pads it (padding at the end instead would put a long silence
    # after the speech, which is what a finished turn sounds like)
    _, cut = _pair(*COMPLETE_AND_CUT[0], tmp_path)
    window = last_window(cut)
    assert window.size == 8 * RATE
    assert np.array_equal(window[-cut.size :], cut)
    assert not window[: -cut.size].any()
    longer = np.concatenate([cut] * 6)  # over 8 s: its last 8 s, nothing added
    assert longer.size > 8 * RATE
    assert np.array_equal(last_window(longer), longer[-8 * RATE :])


def _reference_features(tmp: Path) -> ModuleType:
    """pipecat's own feature code, from the same wheel the model comes from."""
    wheel = download_wheel(tmp)
    member = "pipecat/audio/turn/smart_turn/_whisper_features.py"
    source = tmp / "_whisper_features.py"
    with zipfile.ZipFile(wheel) as zf:
        source.write_bytes(zf.read(member))
    spec = importlib.util.spec_from_file_location("pipecat_whisper_features", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_features_are_those_of_pipecats_own_analyzer(tmp_path: Path) -> None:
    reference = _reference_features(tmp_path)
    complete, cut = _pair(*COMPLETE_AND_CUT[1], tmp_path)
    noise = np.random.default_rng(0).normal(0, 0.1, 3 * RATE).astype(np.float32)
    for audio in (complete, cut, noise, np.zeros(RATE * 9, dtype=np.float32)):
        window = last_window(audio)
        ours, theirs = whisper_features(window), reference.compute_whisper_log_mel_features(window)
        assert ours.shape == theirs.shape == (80, 800)
        assert np.abs(ours - theirs).max() <= 1e-5


def test_download_files_leaves_the_one_model_file_checked(tmp_path: Path) -> None:
    path = fetch_smart_turn(tmp_path / "cache")
    assert [p.name for p in path.parent.iterdir()] == [SMART_TURN_FILE]
    assert path.stat().st_size > 8_000_000
    path.write_bytes(b"half a file")  # not the file expected: fetched again
    assert fetch_smart_turn(tmp_path / "cache").stat().st_size > 8_000_000


# --- the detector: the audio model and the transcript rule together ------------------


def _fed(audio: np.ndarray) -> TurnAudio:
    """A turn's buffer fed `audio` as the VAD reports it: speech starts, then it ends."""
    turn = TurnAudio(turn_gap=3.0)
    pcm = (audio * 32767).astype(np.int16).tobytes()
    frame = rtc.AudioFrame(pcm, sample_rate=RATE, num_channels=1, samples_per_channel=audio.size)
    turn.feed(_event(VADEventType.START_OF_SPEECH))
    turn.feed(_event(VADEventType.INFERENCE_DONE, [frame]))
    turn.feed(_event(VADEventType.END_OF_SPEECH))
    return turn


def _event(kind: VADEventType, frames: list[rtc.AudioFrame] | None = None) -> VADEvent:
    return vad_event(kind, frames)


def _said(text: str) -> llm.ChatContext:
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="user", content=text)
    return ctx


async def test_the_turn_ends_only_when_the_audio_and_the_transcript_both_say_so(
    model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    complete, _ = _pair(*COMPLETE_AND_CUT[0], tmp_path)
    heard: list[int] = []
    answer = 0.0

    def probability(_model: SmartTurn, samples: np.ndarray) -> float:
        # the model's answer is given: no synthetic voice makes it say either one (above)
        heard.append(samples.size)
        return answer

    monkeypatch.setattr(SmartTurn, "probability", probability)

    async def ask(p: float, text: str) -> tuple[float, TurnAudio]:
        nonlocal answer
        answer, audio = p, _fed(complete)
        detector = SmartTurnDetector(None, audio=audio, model_path=model_path)
        return await detector.predict_end_of_turn(_said(text)), audio

    p, audio = await ask(0.9, "Can you tell me a joke about cats?")
    assert p == 0.9 and heard == [complete.size]  # the turn's audio, as the VAD fed it
    assert audio.samples().size == RATE // 2  # finished: the next speech opens a new turn
    # the words could be a whole turn, but the voice is not done: the turn goes on
    p, audio = await ask(0.3, "Can you tell me?")
    assert p == 0.3 and audio.samples().size == complete.size
    # the voice sounds done, but no sentence ends on "of": the model is not even asked
    p, _ = await ask(0.9, "What is the capital of")
    assert p == 0.0 and len(heard) == 2


def test_turn_audio_keeps_half_a_second_before_speech_and_at_most_8_seconds() -> None:
    second = rtc.AudioFrame(
        b"\x01\x00" * RATE, sample_rate=RATE, num_channels=1, samples_per_channel=RATE
    )
    turn = TurnAudio(turn_gap=3.0)
    turn.feed(_event(VADEventType.INFERENCE_DONE, [second, second]))  # silence before
    assert turn.samples().size == RATE // 2
    turn.feed(_event(VADEventType.START_OF_SPEECH))
    turn.feed(_event(VADEventType.INFERENCE_DONE, [second] * 12))
    assert turn.samples().size == 8 * RATE
    turn.close_turn()
    assert turn.samples().size == RATE // 2


def test_turn_audio_starts_a_new_turn_after_a_silence_no_turn_pauses_for() -> None:
    second = rtc.AudioFrame(
        b"\x01\x00" * RATE, sample_rate=RATE, num_channels=1, samples_per_channel=RATE
    )
    turn = TurnAudio(turn_gap=3.0)
    turn.feed(_event(VADEventType.START_OF_SPEECH))
    turn.feed(_event(VADEventType.INFERENCE_DONE, [second]))
    turn.feed(_event(VADEventType.END_OF_SPEECH))
    turn.feed(_event(VADEventType.INFERENCE_DONE, [second] * 2))  # a pause within the turn
    turn.feed(_event(VADEventType.START_OF_SPEECH))
    assert turn.samples().size == 3 * RATE
    turn.feed(_event(VADEventType.END_OF_SPEECH))
    turn.feed(_event(VADEventType.INFERENCE_DONE, [second] * 4))  # longer than any turn waits
    turn.feed(_event(VADEventType.START_OF_SPEECH))
    assert turn.samples().size == RATE // 2


def test_smart_turn_without_its_model_stops_start_up_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        settings_for("http://127.0.0.1:9/v1", turn_detection="smart-turn", model_cache_dir=tmp_path)
    assert str(e.value).startswith("TURN_DETECTION: smart-turn needs its model, not found at")
    assert "voice-agent download-files" in str(e.value)
    with pytest.raises(ConfigError, match="STT_ON_PAUSE: must be true with TURN_DETECTION=smart"):
        settings_for("http://127.0.0.1:9/v1", turn_detection="smart-turn", stt_on_pause=False)


async def test_the_model_runs_off_the_event_loop(model_path: Path, tmp_path: Path) -> None:
    complete, _ = _pair(*COMPLETE_AND_CUT[0], tmp_path)
    detector = SmartTurnDetector(None, audio=_fed(complete), model_path=model_path)
    shared_smart_turn(model_path)  # loaded: what is timed below is the call
    ticks = 0
    done = asyncio.Event()

    async def tick() -> None:
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        p = await detector.predict_end_of_turn(_said("Can you tell me a joke about cats?"))
    finally:
        done.set()
        await ticker
    assert 0.0 <= p <= 1.0 and detector.last_probability == p
    assert ticks >= 3  # a call on the loop's thread would have let it run once at most
