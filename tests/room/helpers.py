"""What the room tests share besides fixtures: the canary credentials, a LiveKit server
of the pinned version, fresh room names, and the two things a participant does in nearly
every test (hear the greeting, ask a question and hear the answer)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from testing.participant import Participant, transcribe
from testing.room import Stack
from testing.servers.livekit_real import LiveKitServer, LiveKitServerMissing

API_KEY = "room-test-key"
API_SECRET = "room-api-secret-canary-4f9d2c7e1b8a6035"
LLM_API_KEY = "sk-room-llm-key-canary-77aa11bb"
STT_API_KEY = "stt-room-key-canary-5c3e"
CANARIES = (API_SECRET, LLM_API_KEY, STT_API_KEY)
"""Every credential the stack is given: no log line may show one."""
AGENT_NAME = "front-desk"
"""The shared worker's LIVEKIT_AGENT_NAME."""
CANARY_ENV = {"LLM_API_KEY": LLM_API_KEY, "STT_API_KEY": STT_API_KEY}


def livekit_server() -> LiveKitServer:
    """A started LiveKit server with the canary key; without the pinned binary the test
    is skipped, except in CI, where `.ci/run` has installed it and it must be there."""
    try:
        server = LiveKitServer(api_key=API_KEY, api_secret=API_SECRET)
    except LiveKitServerMissing as e:
        if os.environ.get("CI"):
            pytest.fail(str(e))
        pytest.skip(str(e))
    return server.start()


def room_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def greeted(p: Participant, stack: Stack) -> str:
    """Wait for the agent's greeting to be heard, in full; what Whisper hears in it."""
    heard = await p.utterance_after(0, within=60, what="the greeting")
    return await transcribe(heard.pcm, base_url=stack.backends.stt.base_url)


async def ask(p: Participant, stack: Stack, wav: Path, *, within: float = 60) -> str:
    """Say the question; what Whisper hears in the answer that comes back (lower case)."""
    spoken = await p.say(wav)
    heard = await p.utterance_after(spoken.ended_at, within=within, what="the answer")
    return (await transcribe(heard.pcm, base_url=stack.backends.stt.base_url)).lower()
