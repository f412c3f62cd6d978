"""Settings: the one place the environment is read and validated.

A wrong or missing value stops start-up with `ConfigError`, whose message is one
line naming the variable and what it expects.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from providers import (
    PLACEHOLDER_API_KEY,
    PRESETS,
    STT_PRESETS,
    TTS_PRESETS,
    ProviderName,
    ProviderOptions,
    ProviderPreset,
    SpeechPreset,
    STTOptions,
    STTProviderName,
    TTSOptions,
    TTSProviderName,
)

DEFAULT_INSTRUCTIONS = (
    "You are a helpful voice assistant. Your replies are spoken aloud, so keep them short "
    "and conversational, without lists, markdown, emojis or code."
)


LIVEKIT_DEV_SECRET = "secret"
"""`livekit-server --dev`'s well-known secret: a default, not a secret worth redacting."""


class ConfigError(Exception):
    """A setting is missing or malformed; the message is the one line to show the user."""


PositiveSeconds = Annotated[float, Field(gt=0, le=3600)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # --- LLM backend ---
    llm_provider: ProviderName = "openai-compatible"
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str | None = None
    llm_timeout: PositiveSeconds = 30.0
    llm_temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    llm_max_retries: Annotated[int, Field(ge=0, le=10)] = 1

    # --- agent behaviour ---
    agent_instructions: str | None = None
    agent_instructions_file: Path | None = None
    agent_apology: str = "Sorry, I'm having trouble answering right now. Please try again."
    agent_fallback_reply: str = "Sorry, I don't have an answer to that."
    tool_pass_mode: Literal["streamed", "blocking"] = "streamed"
    max_tool_rounds: Annotated[int, Field(ge=1, le=20)] = 1
    tool_timeout: PositiveSeconds = 10.0
    builtin_tools: bool = True

    # --- speech backends (OpenAI audio API) ---
    stt_provider: STTProviderName = "speaches"
    stt_base_url: str | None = None
    stt_api_key: SecretStr | None = None
    stt_model: str | None = None
    stt_language: str = "en"
    tts_provider: TTSProviderName = "kokoro"
    tts_base_url: str | None = None
    tts_api_key: SecretStr | None = None
    tts_model: str | None = None
    tts_voice: str | None = None

    # --- voice session ---
    agent_greeting: str = "Hi! How can I help you?"
    agent_stt_error_reply: str = "Sorry, I couldn't hear that. My speech recognition isn't working."
    allow_interruptions: bool = True
    min_interruption_duration: Annotated[float, Field(ge=0, le=10)] = 0.5
    endpointing_min_delay: Annotated[float, Field(ge=0, le=10)] = 0.5
    endpointing_max_delay: Annotated[float, Field(gt=0, le=30)] = 3.0

    # --- LiveKit worker ---
    livekit_url: str = "ws://localhost:7880"
    livekit_api_key: str = "devkey"
    livekit_api_secret: SecretStr = SecretStr(LIVEKIT_DEV_SECRET)
    livekit_agent_name: str = ""
    worker_port: Annotated[int, Field(ge=0, le=65535)] = 8081
    worker_connect_retries: Annotated[int, Field(ge=0, le=1000)] = 16
    worker_drain_timeout: Annotated[int, Field(ge=0, le=86400)] = 1800

    # --- logging ---
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    log_format: Literal["json", "console"] = "json"

    @field_validator(
        "log_level",
        "log_format",
        "llm_provider",
        "tool_pass_mode",
        "stt_provider",
        "tts_provider",
        mode="before",
    )
    @classmethod
    def _lowercase(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator(
        "llm_base_url",
        "llm_model",
        "llm_api_key",
        "agent_instructions",
        "stt_base_url",
        "stt_api_key",
        "stt_model",
        "tts_base_url",
        "tts_api_key",
        "tts_model",
        "tts_voice",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("llm_base_url", "stt_base_url", "tts_base_url")
    @classmethod
    def _check_url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        parts = urlsplit(v.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("expected an http(s) URL such as http://localhost:8000/v1")
        return v.strip()

    @field_validator("livekit_url")
    @classmethod
    def _check_livekit_url(cls, v: str) -> str:
        parts = urlsplit(v.strip())
        if parts.scheme not in ("ws", "wss", "http", "https") or not parts.netloc:
            raise ValueError("expected a ws(s):// URL such as ws://localhost:7880")
        return v.strip()

    @field_validator("livekit_api_key", "stt_language")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v.strip()

    @field_validator("agent_instructions_file")
    @classmethod
    def _check_file(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_file():
            raise ValueError("expected the path of a readable text file")
        return v

    @model_validator(mode="after")
    def _check_backend(self) -> Settings:
        preset = self.preset
        if self.llm_base_url is None and preset.default_base_url is None:
            raise _FieldError(
                "llm_base_url",
                f"required for LLM_PROVIDER={preset.name} "
                "(the server's URL, e.g. http://localhost:8000/v1)",
            )
        if self.llm_model is None and preset.default_model is None:
            raise _FieldError(
                "llm_model",
                f"required for LLM_PROVIDER={preset.name} (the model name the server serves)",
            )
        if preset.requires_api_key and self.api_key is None:
            where = f" (or {preset.api_key_env})" if preset.api_key_env else ""
            raise _FieldError(
                "llm_api_key", f"required for LLM_PROVIDER={preset.name}; set LLM_API_KEY{where}"
            )
        if self.endpointing_max_delay < self.endpointing_min_delay:
            raise _FieldError(
                "endpointing_max_delay", "must not be less than ENDPOINTING_MIN_DELAY"
            )
        for kind in ("stt", "tts"):
            _check_speech_backend(self, kind)
        return self

    @property
    def preset(self) -> ProviderPreset:
        return PRESETS[self.llm_provider]

    @property
    def api_key(self) -> str | None:
        if self.llm_api_key is not None:
            return self.llm_api_key.get_secret_value()
        env = self.preset.api_key_env
        return (os.environ.get(env) or None) if env else None

    @property
    def instructions(self) -> str:
        if self.agent_instructions_file is not None:
            return self.agent_instructions_file.read_text(encoding="utf-8").strip()
        return self.agent_instructions or DEFAULT_INSTRUCTIONS

    def provider_options(self) -> ProviderOptions:
        preset = self.preset
        return ProviderOptions(
            model=self.llm_model or preset.default_model or "",
            base_url=self.llm_base_url or preset.default_base_url or "",
            api_key=self.api_key or PLACEHOLDER_API_KEY,
            timeout=self.llm_timeout,
            temperature=self.llm_temperature,
            max_retries=self.llm_max_retries,
        )

    @property
    def stt_preset(self) -> SpeechPreset:
        return STT_PRESETS[self.stt_provider]

    @property
    def tts_preset(self) -> SpeechPreset:
        return TTS_PRESETS[self.tts_provider]

    def speech_api_key(self, kind: Literal["stt", "tts"]) -> str | None:
        explicit: SecretStr | None = getattr(self, f"{kind}_api_key")
        if explicit is not None:
            return explicit.get_secret_value()
        env = (self.stt_preset if kind == "stt" else self.tts_preset).api_key_env
        return (os.environ.get(env) or None) if env else None

    def stt_options(self) -> STTOptions:
        preset = self.stt_preset
        return STTOptions(
            base_url=(self.stt_base_url or preset.default_base_url or "").rstrip("/"),
            model=self.stt_model or preset.default_model or "",
            api_key=self.speech_api_key("stt") or PLACEHOLDER_API_KEY,
            language=self.stt_language,
        )

    def tts_options(self) -> TTSOptions:
        preset = self.tts_preset
        return TTSOptions(
            base_url=(self.tts_base_url or preset.default_base_url or "").rstrip("/"),
            model=self.tts_model or preset.default_model or "",
            voice=self.tts_voice or preset.default_voice or "",
            api_key=self.speech_api_key("tts") or PLACEHOLDER_API_KEY,
        )

    def secrets(self) -> list[str]:
        """Values that must never reach a log line or a spoken word."""
        keys = [self.api_key, self.speech_api_key("stt"), self.speech_api_key("tts")]
        lk_secret = self.livekit_api_secret.get_secret_value()
        if lk_secret != LIVEKIT_DEV_SECRET:
            keys.append(lk_secret)
        return [k for k in keys if k and k != PLACEHOLDER_API_KEY]


def _check_speech_backend(settings: Settings, kind: Literal["stt", "tts"]) -> None:
    preset = settings.stt_preset if kind == "stt" else settings.tts_preset
    var = kind.upper()
    if getattr(settings, f"{kind}_base_url") is None and preset.default_base_url is None:
        raise _FieldError(
            f"{kind}_base_url",
            f"required for {var}_PROVIDER={preset.name} "
            "(the server's URL, e.g. http://localhost:8000/v1)",
        )
    if getattr(settings, f"{kind}_model") is None and preset.default_model is None:
        raise _FieldError(
            f"{kind}_model",
            f"required for {var}_PROVIDER={preset.name} (the model name the server serves)",
        )
    if kind == "tts" and settings.tts_voice is None and preset.default_voice is None:
        raise _FieldError(
            "tts_voice", f"required for TTS_PROVIDER={preset.name} (a voice the server has)"
        )
    if preset.requires_api_key and settings.speech_api_key(kind) is None:
        where = f" (or {preset.api_key_env})" if preset.api_key_env else ""
        raise _FieldError(
            f"{kind}_api_key",
            f"required for {var}_PROVIDER={preset.name}; set {var}_API_KEY{where}",
        )


class _FieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def load_settings(**overrides: object) -> Settings:
    """Read and validate the environment (and `.env`); raise `ConfigError` on the first problem."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        raise ConfigError(_one_line(e)) from None


def _one_line(e: ValidationError) -> str:
    err = e.errors(include_url=False, include_input=False)[0]
    ctx_error = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _FieldError):
        return f"{ctx_error.field.upper()}: {ctx_error}"
    field = str(err["loc"][0]).upper() if err["loc"] else "configuration"
    message = err["msg"].removeprefix("Value error, ")
    if message.startswith("Input should be "):
        message = "expected " + message.removeprefix("Input should be ").replace("a valid ", "a ")
    return f"{field}: {message}".replace("\n", " ")
