from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.audio_io import espeak_to_wav
from testing.servers.tts_server import EspeakTTSServer


@pytest.fixture
def tts_server() -> Iterator[EspeakTTSServer]:
    with EspeakTTSServer() as server:
        yield server


@pytest.fixture(scope="session")
def silero_vad():  # type: ignore[no-untyped-def]
    from livekit.plugins import silero

    return silero.VAD.load()


@pytest.fixture(scope="session")
def question_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return espeak_to_wav(
        "What time is it in Tokyo?", tmp_path_factory.mktemp("audio") / "question.wav"
    )
