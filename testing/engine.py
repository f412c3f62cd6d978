"""A turn engine, its LLM client and settings, pointed at a scripted server."""

from __future__ import annotations

from typing import Any

from agent.resolved import Config, load_config
from agent.turns import TurnEngine, TurnOptions
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
    server: ScriptedLLMServer | str,
    *,
    timeout: float = 2.0,
    max_retries: int = 0,
    api_key: str = "not-needed",
    **turn_options: object,
) -> TurnEngine:
    """An engine with the shared APOLOGY / FALLBACK lines; `turn_options` go to TurnOptions."""
    opts: dict[str, object] = {"apology": APOLOGY, "fallback_reply": FALLBACK, "tool_timeout": 1.0}
    opts.update(turn_options)
    llm = make_llm(server, timeout=timeout, max_retries=max_retries, api_key=api_key)
    return TurnEngine(llm, TurnOptions(**opts))  # type: ignore[arg-type]


def settings_for(server: ScriptedLLMServer, **fields: Any) -> Config:
    """The resolved configuration pointed at `server`, plus `fields` (keyword arguments,
    not the environment)."""
    return load_config(llm_base_url=server.base_url, llm_model="test-model", **fields)
