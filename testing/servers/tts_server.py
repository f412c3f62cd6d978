"""An OpenAI-compatible TTS server on 127.0.0.1 that speaks with espeak-ng.

`POST /v1/audio/speech` answers with a WAV of the requested text, as Kokoro-FastAPI and
Speaches answer the same request. Every request is recorded with its arrival time, and
`fail_with` makes it answer with an HTTP error instead (a TTS backend that is down).
Runs in its own thread and event loop, like `ScriptedLLMServer`.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .threaded import ThreadedServer


@dataclass(frozen=True)
class SpeechRequest:
    text: str
    model: str
    voice: str
    body: dict[str, Any]
    received_at: float
    """time.time() of arrival (wall clock, to compare with livekit's timestamps)."""


async def espeak_wav(text: str, *, rate: int = 175) -> bytes:
    """A WAV (22.05 kHz mono) of `text` spoken by espeak-ng."""
    proc = await asyncio.create_subprocess_exec(
        "espeak-ng",
        "-s",
        str(rate),
        "--stdout",
        text,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"espeak-ng failed: {err.decode(errors='replace')}")
    return out


class EspeakTTSServer(ThreadedServer):
    def __init__(self) -> None:
        super().__init__()
        if shutil.which("espeak-ng") is None:
            raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
        self.requests: list[SpeechRequest] = []
        self.fail_with: int | None = None
        """Answer every request with this HTTP status (None: speak)."""

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.requests]

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/audio/speech", self._speech)

    async def _speech(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(
            SpeechRequest(
                text=str(body.get("input", "")),
                model=str(body.get("model", "")),
                voice=str(body.get("voice", "")),
                body=body,
                received_at=time.time(),
            )
        )
        if self.fail_with is not None:
            return web.json_response(
                {"error": {"message": "scripted TTS failure"}}, status=self.fail_with
            )
        # like Kokoro-FastAPI asked for a format it doesn't stream: the body is a WAV and
        # the Content-Type says so, which livekit's plugin honours over response_format
        return web.Response(body=await espeak_wav(body.get("input", "")), content_type="audio/wav")
