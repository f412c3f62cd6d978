"""OpenAI-compatible STT and TTS with fixed latencies, on 127.0.0.1.

`POST /v1/audio/transcriptions` answers `transcript` after `stt_delay`; `POST
/v1/audio/speech` answers a short tone (WAV) after `tts_delay`. No model runs, so a
benchmark measures the worker and not the speech backends.
"""

from __future__ import annotations

import asyncio
import io
import math
import struct
import wave

from aiohttp import web

from .threaded import ThreadedServer


def tone_wav(seconds: float, *, sample_rate: int = 24_000, hz: float = 220.0) -> bytes:
    n = int(seconds * sample_rate)
    pcm = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * i / sample_rate)))
        for i in range(n)
    )
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return buf.getvalue()


class ScriptedSpeechServer(ThreadedServer):
    def __init__(
        self,
        *,
        transcript: str = "What time is it in Tokyo?",
        stt_delay: float = 0.15,
        tts_delay: float = 0.1,
        speech_seconds: float = 1.0,
    ) -> None:
        super().__init__()
        self.transcript = transcript
        self.stt_delay = stt_delay
        self.tts_delay = tts_delay
        self._wav = tone_wav(speech_seconds)
        self.transcriptions = 0
        self.syntheses = 0

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/audio/transcriptions", self._transcribe)
        app.router.add_post("/v1/audio/speech", self._speak)

    async def _transcribe(self, request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(self.stt_delay)
        self.transcriptions += 1
        return web.json_response({"text": self.transcript})

    async def _speak(self, request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(self.tts_delay)
        self.syntheses += 1
        return web.Response(body=self._wav, content_type="audio/wav")
