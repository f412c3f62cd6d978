"""One cheap request per backend, to tell a user whether their configuration works.

Each probe goes through the same client code the session uses (our LLM provider,
livekit-plugins-openai's STT and TTS), so a pass means the real path works, and
returns a `ProbeResult` whose text carries no key of ours; the server's own words are
passed on whole, for the caller to redact and then shorten.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx2
import openai
from livekit import rtc
from livekit.agents import APIConnectOptions, APIError, APIStatusError, APITimeoutError

from .moonshine import EmbeddedSTTOptions
from .openai_compatible import OpenAICompatibleProvider
from .speech import AnySTTOptions, TTSOptions, build_stt, build_tts


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    detail: str


def describe_error(e: BaseException) -> str:
    """A short, key-free description of why a request failed."""
    if isinstance(e, APITimeoutError | httpx2.TimeoutException):
        return "timed out"
    if isinstance(e, APIStatusError):
        return f"HTTP {e.status_code}" + (f": {_short(e.message)}" if e.message else "")
    if isinstance(e, httpx2.HTTPStatusError):
        return f"HTTP {e.response.status_code}"
    # livekit's and openai's errors wrap the one that says what happened ("Connection
    # error." alone doesn't): describe that one
    cause = e.__cause__ or e.__context__
    if isinstance(e, APIError | openai.APIConnectionError) and cause is not None:
        return describe_error(cause)
    if isinstance(e, httpx2.ConnectError | ConnectionError | OSError):
        return "connection refused or host unreachable"
    return _short(str(e)) or type(e).__name__


async def probe_llm(provider: OpenAICompatibleProvider, *, request_timeout: float) -> ProbeResult:
    """`GET /models` lists the model, or else a one-token completion answers."""
    opts = provider.options
    # the provider's URL (userinfo taken out) and credentials: the same as a session's
    headers, base = provider.headers, provider.base_url
    try:
        async with httpx2.AsyncClient(timeout=request_timeout) as client:
            resp = await client.get(f"{base}/models", headers=headers)
            if resp.status_code == 200:
                ids = {m.get("id") for m in (resp.json().get("data") or []) if isinstance(m, dict)}
                if opts.model in ids:
                    return ProbeResult(True, f"model {opts.model} listed")
            # not listed (or no /models): the model may still answer under that name
            resp = await client.post(
                f"{base}/chat/completions",
                headers=headers,
                json={
                    "model": opts.model,
                    "messages": [{"role": "user", "content": "Say OK."}],
                    "max_tokens": 1,
                },
            )
            if resp.status_code == 200:
                return ProbeResult(True, f"model {opts.model} answered")
            return ProbeResult(False, f"HTTP {resp.status_code}: {_error_message(resp)}")
    except Exception as e:
        return ProbeResult(False, describe_error(e))


def silence_frame(seconds: float = 1.0, sample_rate: int = 16000) -> rtc.AudioFrame:
    """A second of silence: a whole transcription request that Whisper answers quickly
    (a pure tone makes it hallucinate for a minute)."""
    n = int(seconds * sample_rate)
    return rtc.AudioFrame(
        b"\x00\x00" * n, sample_rate=sample_rate, num_channels=1, samples_per_channel=n
    )


async def probe_stt(options: AnySTTOptions, *, request_timeout: float) -> ProbeResult:
    """A second of silence transcribed: by the server, or by the model in this process
    (which proves the wheel's model loads and runs; nothing else needs to be running)."""
    engine = build_stt(options)
    if isinstance(options, EmbeddedSTTOptions):
        # loading is not the request: the timeout is for the transcription
        await asyncio.to_thread(engine.prewarm)
    try:
        await engine.recognize(
            silence_frame(), conn_options=APIConnectOptions(max_retry=0, timeout=request_timeout)
        )
        return ProbeResult(True, f"model {options.model} transcribed a second of silence")
    except Exception as e:
        return ProbeResult(False, describe_error(e))
    finally:
        await engine.aclose()


async def probe_tts(options: TTSOptions, *, request_timeout: float) -> ProbeResult:
    engine = build_tts(options)
    try:
        seconds = 0.0
        async with engine.synthesize(
            "Hello.", conn_options=APIConnectOptions(max_retry=0, timeout=request_timeout)
        ) as stream:
            async for ev in stream:
                seconds += ev.frame.duration
        if seconds <= 0:
            return ProbeResult(False, "the server answered without audio")
        return ProbeResult(
            True, f"model {options.model}, voice {options.voice}: {seconds:.1f} s of audio"
        )
    except Exception as e:
        return ProbeResult(False, describe_error(e))
    finally:
        await engine.aclose()


def _error_message(resp: httpx2.Response) -> str:
    try:
        body = resp.json()
        err = body.get("error") if isinstance(body, dict) else None
        msg = err.get("message") if isinstance(err, dict) else (err or body.get("detail"))
        return _short(str(msg)) if msg else resp.reason_phrase
    except Exception:
        return _short(resp.text) or resp.reason_phrase


def _short(text: str) -> str:
    # one line; not cut here: the caller redacts first, then cuts (a credential cut in
    # half would otherwise survive as its prefix)
    return " ".join(text.split())
