"""Known backends as data: default URL, where the key lives, and their quirks.

A quirk is a flag read by the provider, never an `if provider == ...` branch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol, TypeVar

ProviderName = Literal["openai-compatible", "ollama", "groq", "openrouter", "openai"]


PLACEHOLDER_API_KEY = "not-needed"
"""Sent to servers without authentication: several reject a request with an empty key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Quirks:
    strict_tool_schema: bool = False
    """Send `strict: true` JSON schemas. Only OpenAI is known to accept them everywhere."""
    stream_usage: bool = False
    """Ask for `stream_options.include_usage`; older llama.cpp/TGI builds reject the field."""
    reports_finish_reason: bool = True
    """The server ends every stream with a `finish_reason` or `[DONE]` after complete
    output; neither means a cut stream."""
    thinking_off: MappingProxyType[str, Any] = field(default_factory=lambda: _NO_FIELDS)
    """Request fields that switch a reasoning model's thinking off (sent by default)."""
    thinking_on: MappingProxyType[str, Any] = field(default_factory=lambda: _NO_FIELDS)
    """Request fields that switch it on (`LLM_THINKING=on`)."""
    thinks_in_text: bool = False
    """Streams its thought as plain text ended by a bare `</think>`: hold text until it."""


THINKS_IN_TEXT_MODELS = ("deepseek-r1", "r1-distill", "qwq")
"""Model families whose templates open the thought in the prompt: without a reasoning
parser the server streams the thought as plain text ended by a bare `</think>`."""

_NO_FIELDS: MappingProxyType[str, Any] = MappingProxyType({})
# Qwen3-style templates on vLLM, llama.cpp and SGLang read `enable_thinking`
_TEMPLATE_THINKING_OFF = MappingProxyType({"chat_template_kwargs": {"enable_thinking": False}})
_TEMPLATE_THINKING_ON = MappingProxyType({"chat_template_kwargs": {"enable_thinking": True}})
# Ollama: `think` on its native API, `reasoning_effort` on its OpenAI endpoint
_OLLAMA_THINKING_OFF = MappingProxyType({"think": False, "reasoning_effort": "none"})
_OLLAMA_THINKING_ON = MappingProxyType({"think": True})


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderPreset:
    name: ProviderName
    default_base_url: str | None
    """None: the user must say where the server is."""
    api_key_env: str | None = None
    """The vendor's conventional variable, read when `LLM_API_KEY` is not set."""
    requires_api_key: bool = False
    default_model: str | None = None
    headers: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))
    quirks: Quirks = Quirks()


class _Named(Protocol):
    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=_Named)


def by_name(*presets: N) -> MappingProxyType[str, N]:
    """A read-only table of `presets`, looked up by name."""
    return MappingProxyType({p.name: p for p in presets})


PRESETS: MappingProxyType[str, ProviderPreset] = by_name(
    # vLLM, LiteLLM, LocalAI, text-generation-inference, llama.cpp, LM Studio, ...
    ProviderPreset(
        name="openai-compatible",
        default_base_url=None,
        quirks=Quirks(thinking_off=_TEMPLATE_THINKING_OFF, thinking_on=_TEMPLATE_THINKING_ON),
    ),
    ProviderPreset(
        name="ollama",
        default_base_url="http://localhost:11434/v1",
        default_model="llama3.2",
        quirks=Quirks(
            stream_usage=True,
            thinking_off=_OLLAMA_THINKING_OFF,
            thinking_on=_OLLAMA_THINKING_ON,
        ),
    ),
    ProviderPreset(
        name="groq",
        default_base_url="https://api.groq.com/openai/v1",
        api_key_env="GROQ_API_KEY",
        requires_api_key=True,
        default_model="llama-3.3-70b-versatile",
        quirks=Quirks(stream_usage=True),
    ),
    ProviderPreset(
        name="openrouter",
        default_base_url="https://openrouter.ai/api/v1",
        api_key_env="OPENROUTER_API_KEY",
        requires_api_key=True,
        default_model="openai/gpt-4o-mini",
        # OpenRouter's app attribution headers
        headers=MappingProxyType(
            {
                "HTTP-Referer": "https://github.com/voice-agent/voice-agent",
                "X-Title": "voice-agent",
            }
        ),
        quirks=Quirks(stream_usage=True),
    ),
    ProviderPreset(
        name="openai",
        default_base_url="https://api.openai.com/v1",
        api_key_env="OPENAI_API_KEY",
        requires_api_key=True,
        default_model="gpt-4o-mini",
        quirks=Quirks(strict_tool_schema=True, stream_usage=True),
    ),
)
