"""One voice stack for the room tests: a real LiveKit server, the real worker
(`voice-agent start`), the real Whisper STT and espeak-ng TTS servers and the scripted
LLM, all on 127.0.0.1 and shared by every test that leaves them as it found them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from testing.audio_io import espeak_to_wav
from testing.room import Backends, Stack, VoiceWorker
from testing.servers.livekit_real import LiveKitServer
from testing.servers.openai_server import ScriptedLLMServer
from testing.servers.tts_server import EspeakTTSServer
from testing.servers.whisper_server import WhisperServer
from tests.room import script
from tests.room.helpers import AGENT_NAME, CANARY_ENV, livekit_server


@pytest.fixture(scope="session")
def room_backends(whisper_server: WhisperServer) -> Iterator[Backends]:
    with ScriptedLLMServer(default=script.answer) as llm, EspeakTTSServer() as tts:
        yield Backends(llm=llm, stt=whisper_server, tts=tts)


@dataclass
class SharedStack:
    """The LiveKit server and the worker every room test shares. The worker has an agent
    name (participants' tokens dispatch it; test_worker_lifecycle.py shows that a room
    without dispatch stays without it) and logs at debug level, the most a log could leak.
    Tests that stop the server or the worker leave them stopped: `running()` starts them
    again for the next test."""

    livekit: LiveKitServer
    backends: Backends
    workers: list[VoiceWorker] = field(default_factory=list)

    def running(self) -> Stack:
        if not self.livekit.answers():
            self.livekit.start()
        if not self.workers or not self.workers[-1].running:
            env = {**CANARY_ENV, "LOG_LEVEL": "debug", "LIVEKIT_AGENT_NAME": AGENT_NAME}
            self.workers.append(VoiceWorker(self.livekit, self.backends, env=env).start())
        worker = self.workers[-1]
        return Stack(self.livekit, self.backends, worker=worker, agent_name=AGENT_NAME)


@pytest.fixture(scope="session")
def shared_stack(room_backends: Backends) -> Iterator[SharedStack]:
    shared = SharedStack(livekit_server(), room_backends)
    try:
        yield shared
    finally:
        for worker in shared.workers:
            worker.close()
        shared.livekit.close()


@pytest.fixture
def stack(shared_stack: SharedStack) -> Stack:
    """The shared LiveKit server and worker, running."""
    return shared_stack.running()


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
