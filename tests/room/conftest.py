"""One voice stack for the room tests: a real LiveKit server, the real worker
(`voice-agent start`), the real Whisper STT and espeak-ng TTS servers and the scripted
LLM, all on 127.0.0.1 and shared by every test that leaves them as it found them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.audio_io import espeak_to_wav
from testing.room import Backends, Stack, VoiceWorker
from testing.servers.openai_server import ScriptedLLMServer
from testing.servers.tts_server import EspeakTTSServer
from testing.servers.whisper_server import WhisperServer
from tests.room import script
from tests.room.helpers import CANARY_ENV, livekit_server


@pytest.fixture(scope="session")
def room_backends(whisper_server: WhisperServer) -> Iterator[Backends]:
    with ScriptedLLMServer(default=script.answer) as llm, EspeakTTSServer() as tts:
        yield Backends(llm=llm, stt=whisper_server, tts=tts)


@pytest.fixture(scope="session")
def stack(room_backends: Backends) -> Iterator[Stack]:
    """The shared LiveKit server and worker (debug logs: the most a log could leak)."""
    livekit = livekit_server()
    worker = VoiceWorker(livekit, room_backends, env={**CANARY_ENV, "LOG_LEVEL": "debug"})
    try:
        worker.start()
        yield Stack(livekit=livekit, backends=room_backends, worker=worker)
    finally:
        worker.close()
        livekit.close()


@pytest.fixture(scope="session")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each question, spoken by espeak-ng (16 kHz mono, 0.3 s of silence either side)."""
    folder = tmp_path_factory.mktemp("questions")
    texts = {
        "tokyo": script.TOKYO,
        "capital": script.CAPITAL,
        "clock": script.CLOCK,
        "story": script.STORY,
        "stop": script.STOP,
    }
    return {name: espeak_to_wav(text, folder / f"{name}.wav") for name, text in texts.items()}
