"""A turn engine, its LLM client and settings, pointed at a scripted server."""

from __future__ import annotations

from typing import Any

from agent.config.resolved import Config, load_config
from agent.engine.turns import TurnEngine, TurnOptions
from providers import OpenAICompatibleProvider, ProviderOptions
from testing.servers.openai_server import ScriptedLLMServer

APOLOGY = "Sorry, something went wrong on my side."
FALLBACK = "I have nothing to add."


def make_llm(
    server: ScriptedLLMServer | str,
    *,
    timeout: float = 2.0,
    max_retries: int = 0,
    api_key: str = "not-needed",
) -> OpenAICompatibleProvider:
    """Our LLM client for `server` (a scripted server or its base URL)."""
    base_url = server if isinstance(server, str) else server.base_url
    return OpenAICompatibleProvider(
        options=ProviderOptions(
            model="test-model",
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            retry_interval=0.05,
        )
    )


def make_engine(
    server: ScriptedLLMServer | str, *, timeout: float = 2.0, max_retries: int = 0, **turn: Any
) -> TurnEngine:
    """An engine with the shared APOLOGY / FALLBACK lines over `make_llm(server)`; `turn`
    overrides TurnOptions (its tool timeout is 1 s here, to keep tool tests short)."""
    options = TurnOptions(
        **{"apology": APOLOGY, "fallback_reply": FALLBACK, "tool_timeout": 1.0, **turn}
    )
    return TurnEngine(make_llm(server, timeout=timeout, max_retries=max_retries), options)


def settings_for(server: ScriptedLLMServer | str, **fields: Any) -> Config:
    """The resolved configuration pointed at `server` (or its base URL), plus `fields`
    (keyword arguments, not the environment)."""
    base_url = server if isinstance(server, str) else server.base_url
    return load_config(llm_base_url=base_url, llm_model="test-model", **fields)


IN_PROCESS = "in-process"
"""`stt_url` for the STT in the worker (Moonshine, the default) instead of a server."""


def stt_fields(stt_url: str) -> dict[str, str]:
    """The STT settings for `stt_url`: the Whisper server's tiny.en there (Speaches), or
    Moonshine in this process for `IN_PROCESS`."""
    if stt_url == IN_PROCESS:
        return {"stt_provider": "moonshine"}
    return {"stt_provider": "speaches", "stt_base_url": stt_url, "stt_model": "tiny.en"}


def voice_config(
    server: ScriptedLLMServer | str, *, stt_url: str, tts_url: str, **fields: Any
) -> Config:
    """`settings_for` a voice session: the STT of `stt_fields(stt_url)` and the espeak-ng
    TTS server (`testing.servers`), no LLM retries."""
    return settings_for(
        server, llm_max_retries=0, tts_base_url=tts_url, **{**stt_fields(stt_url), **fields}
    )
