"""Backends. The only package that knows vendors; it never reads the environment."""

from .base import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    Completion,
    StreamCutError,
    ToolCall,
)
from .cooldown import BackendCoolingDown, Cooldown
from .openai_compatible import (
    NOT_STREAMED,
    OpenAICompatibleProvider,
    ProviderOptions,
    normalize_base_url,
)
from .presets import PLACEHOLDER_API_KEY, PRESETS, ProviderName, ProviderPreset, Quirks

__all__ = [
    "NOT_STREAMED",
    "PLACEHOLDER_API_KEY",
    "PRESETS",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "BackendCoolingDown",
    "Completion",
    "Cooldown",
    "OpenAICompatibleProvider",
    "ProviderName",
    "ProviderOptions",
    "ProviderPreset",
    "Quirks",
    "StreamCutError",
    "ToolCall",
    "normalize_base_url",
]
