"""Backends. The only package that knows vendors; it never reads the environment."""

from .base import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    StreamCutError,
    ToolCall,
)
from .cooldown import BackendCoolingDown, Cooldown
from .errors import ModelOutputRejected
from .moonshine import EmbeddedSTTOptions
from .openai_compatible import (
    NOT_STREAMED,
    OpenAICompatibleProvider,
    ProviderOptions,
    normalize_base_url,
)
from .presets import PLACEHOLDER_API_KEY, PRESETS, ProviderName, ProviderPreset, Quirks
from .speech import (
    STT_PRESETS,
    TTS_PRESETS,
    AnySTTOptions,
    SpeechPreset,
    STTOptions,
    STTProviderName,
    TTSOptions,
    TTSProviderName,
    build_stt,
    build_stt_chain,
    build_tts,
    build_tts_chain,
    prewarm_stt,
)

__all__ = [
    "NOT_STREAMED",
    "PLACEHOLDER_API_KEY",
    "PRESETS",
    "STT_PRESETS",
    "TTS_PRESETS",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AnySTTOptions",
    "BackendCoolingDown",
    "Cooldown",
    "EmbeddedSTTOptions",
    "ModelOutputRejected",
    "OpenAICompatibleProvider",
    "ProviderName",
    "ProviderOptions",
    "ProviderPreset",
    "Quirks",
    "STTOptions",
    "STTProviderName",
    "SpeechPreset",
    "StreamCutError",
    "TTSOptions",
    "TTSProviderName",
    "ToolCall",
    "build_stt",
    "build_stt_chain",
    "build_tts",
    "build_tts_chain",
    "normalize_base_url",
    "prewarm_stt",
]
