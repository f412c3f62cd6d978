"""Settings: the one place the environment is read and validated.

A wrong or missing value stops start-up with `ConfigError`, whose message is one
line naming the variable and what it expects.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from agent.config.validation import blank_is_none, lowercase, one_line, url_check
from providers import ProviderName, STTProviderName, TTSProviderName

DEFAULT_INSTRUCTIONS = (
    "You are a helpful voice assistant. Your replies are spoken aloud, so keep them short "
    "and conversational, without lists, markdown, emojis or code."
)


MODEL_MIN_SILENCE = 0.25
"""The shortest VAD silence livekit accepts with its end-of-turn model (its 0.2 s + 0.05)."""

LIVEKIT_DEV_SECRET = "secret"
"""`livekit-server --dev`'s well-known secret: a default, not a secret worth redacting."""


class ConfigError(Exception):
    """A setting is missing or malformed; the message is the one line to show the user."""


PositiveSeconds = Annotated[float, Field(gt=0, le=3600)]
Lowercase = BeforeValidator(lowercase)
HttpUrl = Annotated[
    str | None,
    BeforeValidator(blank_is_none),
    AfterValidator(url_check(expected="an http(s) URL such as http://localhost:8000/v1")),
]
LiveKitUrl = Annotated[
    str,
    AfterValidator(
        url_check(
            ("ws", "wss", "http", "https"), expected="a ws(s):// URL such as ws://localhost:7880"
        )
    ),
]
OptionalText = Annotated[str | None, BeforeValidator(blank_is_none)]
OptionalSecret = Annotated[SecretStr | None, BeforeValidator(blank_is_none)]
OptionalPath = Annotated[Path | None, BeforeValidator(blank_is_none)]


class _BackendEntry(BaseModel):
    """The fields every fallback entry shares with its primary backend."""

    model_config = ConfigDict(extra="forbid")

    base_url: HttpUrl = None
    api_key: OptionalSecret = None
    model: OptionalText = None


class LLMFallback(_BackendEntry):
    """One entry of `LLM_FALLBACKS`."""

    provider: Annotated[ProviderName, Lowercase] = "openai-compatible"


class SpeechFallback(_BackendEntry):
    """One entry of `STT_FALLBACKS` / `TTS_FALLBACKS` (providers checked per kind later)."""

    provider: Annotated[str, Lowercase] = "openai-compatible"
    voice: OptionalText = None
    """TTS only."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # `VAR=` (as in .env.example) means "not set", not "set to nothing"
        env_ignore_empty=True,
    )

    # --- LLM backend ---
    llm_provider: Annotated[ProviderName, Lowercase] = "openai-compatible"
    llm_base_url: HttpUrl = None
    llm_api_key: OptionalSecret = None
    llm_model: OptionalText = None
    llm_timeout: PositiveSeconds = 30.0
    llm_temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    llm_max_retries: Annotated[int, Field(ge=0, le=10)] = 1
    llm_fallbacks: list[LLMFallback] = Field(default_factory=list)
    llm_cooldown: Annotated[float, Field(ge=0, le=3600)] = 30.0
    llm_thinking: bool = False

    # --- agent behaviour ---
    agent_instructions: OptionalText = None
    agent_instructions_file: OptionalPath = None
    agent_apology: str = "Sorry, I'm having trouble answering right now. Please try again."
    agent_fallback_reply: str = "Sorry, I don't have an answer to that."
    tool_pass_mode: Annotated[Literal["streamed", "blocking"], Lowercase] = "streamed"
    max_tool_rounds: Annotated[int, Field(ge=1, le=20)] = 1
    tool_timeout: PositiveSeconds = 10.0
    builtin_tools: bool = True
    tool_filler: str = "One moment."
    tool_filler_delay: Annotated[float, Field(ge=0, le=60)] = 0.7
    tool_result_max_chars: Annotated[int, Field(ge=200, le=1_000_000)] = 4000
    agent_first_word_deadline: Annotated[float, Field(gt=0, le=600)] = 2.5
    agent_turn_timeout: Annotated[float, Field(gt=0, le=3600)] = 90.0

    # --- configured tools (files; their ${VAR} references are expanded from the env) ---
    mcp_config: OptionalPath = None
    mcp_connect_timeout: PositiveSeconds = 5.0
    webhook_tools: OptionalPath = None

    # --- history ---
    history_max_turns: Annotated[int, Field(ge=1, le=1000)] = 20
    history_tool_result_max_chars: Annotated[int, Field(ge=0, le=1_000_000)] = 500

    # --- speech backends (in the worker, or a server's OpenAI audio API) ---
    stt_provider: Annotated[STTProviderName, Lowercase] = "moonshine"
    stt_base_url: HttpUrl = None
    stt_api_key: OptionalSecret = None
    stt_model: OptionalText = None
    stt_language: str = "en"
    tts_provider: Annotated[TTSProviderName, Lowercase] = "kokoro"
    tts_base_url: HttpUrl = None
    tts_api_key: OptionalSecret = None
    tts_model: OptionalText = None
    tts_voice: OptionalText = None
    stt_fallbacks: list[SpeechFallback] = Field(default_factory=list)
    tts_fallbacks: list[SpeechFallback] = Field(default_factory=list)

    # --- voice session ---
    agent_greeting: str = "Hi! How can I help you?"
    agent_stt_error_reply: str = "Sorry, I couldn't hear that. My speech recognition isn't working."
    allow_interruptions: bool = True
    min_interruption_duration: Annotated[float, Field(ge=0, le=10)] = 0.5
    endpointing_min_delay: Annotated[float, Field(ge=0, le=10)] = 0.5
    endpointing_max_delay: Annotated[float, Field(gt=0, le=30)] = 3.0
    # --- fast spoken turns (agent/turn_detection.py, pause_stt.py, tts_chunks.py) ---
    turn_detection: Annotated[Literal["vad", "model", "transcript", "smart-turn"], Lowercase] = (
        "transcript"
    )
    vad_min_silence: Annotated[float, Field(ge=0.05, le=5)] | None = None
    """None: silero's 0.55 s with `vad`, 0.25 s with `model`, 0.2 s with `transcript` and
    `smart-turn`."""
    stt_on_pause: bool = True
    tts_first_chunk_words: Annotated[int, Field(ge=0, le=50)] = 4
    preemptive_generation: bool = True

    model_cache_dir: Path = Field(default_factory=lambda: default_model_cache_dir(os.environ))
    """Where `voice-agent download-files` keeps model files (Smart Turn's)."""

    # --- LiveKit worker ---
    livekit_url: LiveKitUrl = "ws://localhost:7880"
    livekit_api_key: str = "devkey"
    livekit_api_secret: SecretStr = SecretStr(LIVEKIT_DEV_SECRET)
    livekit_agent_name: str = ""
    worker_port: Annotated[int, Field(ge=0, le=65535)] = 8081
    worker_host: str = ""
    """Interface WORKER_PORT listens on ("" = all, as a container needs)."""
    worker_connect_retries: Annotated[int, Field(ge=0, le=1000)] = 16
    worker_drain_timeout: Annotated[int, Field(ge=0, le=86400)] = 1800
    # load reported to LiveKit = active sessions / MAX_SESSIONS; at LOAD_THRESHOLD LiveKit
    # stops dispatching here. The default is what one 2-core worker held in the capacity
    # benchmark (BENCHMARKS.md) with p95 end of speech -> first audio within +100 ms
    max_sessions: Annotated[int, Field(ge=1, le=10_000)] = 20
    load_threshold: Annotated[float, Field(gt=0, le=1)] = 1.0

    # --- observability ---
    prometheus_multiproc_dir: OptionalPath = None
    """Where job processes leave their metrics for `/metrics`; unset: a fresh temp dir."""
    otel_exporter_otlp_endpoint: HttpUrl = None

    _environ: dict[str, str] | None = PrivateAttr(default=None)

    # --- logging ---
    log_level: Annotated[Literal["debug", "info", "warning", "error", "critical"], Lowercase] = (
        "info"
    )
    log_format: Annotated[Literal["json", "console"], Lowercase] | None = None
    """Unset: console when stderr is a terminal, json otherwise."""

    @field_validator("livekit_api_key", "stt_language", "agent_apology", "agent_fallback_reply")
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

    @field_validator("prometheus_multiproc_dir")
    @classmethod
    def _make_metrics_dir(cls, v: Path | None) -> Path | None:
        # prometheus-client opens its files there as soon as a metric is defined
        if v is not None:
            try:
                v.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ValueError(f"expected a writable directory ({e.strerror})") from None
        return v

    @model_validator(mode="after")
    def _check_endpointing(self) -> Settings:
        if self.endpointing_max_delay < self.endpointing_min_delay:
            raise _FieldError(
                "ENDPOINTING_MAX_DELAY", "must not be less than ENDPOINTING_MIN_DELAY"
            )
        return self

    @model_validator(mode="after")
    def _check_smart_turn(self) -> Settings:
        if self.turn_detection == "smart-turn" and not self.stt_on_pause:
            # the model hears the turn's audio through the STT that runs at each pause
            raise _FieldError("STT_ON_PAUSE", "must be true with TURN_DETECTION=smart-turn")
        return self

    @model_validator(mode="after")
    def _check_turn_detection(self) -> Settings:
        if self.turn_detection == "model" and (self.vad_min_silence or 1.0) < MODEL_MIN_SILENCE:
            # livekit's end-of-turn model predicts after 0.2 s of silence; it refuses less
            raise _FieldError(
                "VAD_MIN_SILENCE", f"must be at least {MODEL_MIN_SILENCE} with TURN_DETECTION=model"
            )
        return self

    def environ(self) -> dict[str, str]:
        """The process environment over `.env`: where vendor keys (`GROQ_API_KEY`) and
        `${VAR}` references in tool files are looked up, as users expect of `.env`."""
        if self._environ is None:
            self._environ = {**_dotenv(self.model_config.get("env_file")), **os.environ}
        return self._environ

    @property
    def instructions(self) -> str:
        if self.agent_instructions_file is not None:
            return self.agent_instructions_file.read_text(encoding="utf-8").strip()
        return self.agent_instructions or DEFAULT_INSTRUCTIONS


class _FieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _dotenv(env_file: object) -> dict[str, str]:
    if not isinstance(env_file, (str, Path)) or not Path(env_file).is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(env_file).items() if v is not None}


def default_model_cache_dir(environ: Mapping[str, str]) -> Path:
    """`$XDG_CACHE_HOME/voice-agent`, else `~/.cache/voice-agent`."""
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voice-agent"


def file_and_environ(env_file: Path) -> dict[str, str]:
    """The process environment over `env_file`, as `Settings` sees them: what `voice-agent
    setup` reads to know the current choices and the vendor keys already set."""
    return {**_dotenv(env_file), **os.environ}


def load_settings(**overrides: object) -> Settings:
    """Read and validate the environment (and `.env`); raise `ConfigError` on the first problem."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        raise ConfigError(_one_line(e)) from None
    except SettingsError as e:
        # pydantic-settings could not even decode the value (JSON fields)
        field = re.search(r'field "(\w+)"', str(e))
        name = field.group(1).upper() if field else "configuration"
        raise ConfigError(f"{name}: {_JSON_HINTS.get(name, 'expected valid JSON')}") from None


_JSON_HINTS = {
    "LLM_FALLBACKS": 'expected a JSON list like [{"provider": "groq", "model": "..."}]',
    "STT_FALLBACKS": 'expected a JSON list like [{"provider": "groq"}]',
    "TTS_FALLBACKS": 'expected a JSON list like [{"provider": "openai", "voice": "ash"}]',
}


def _one_line(e: ValidationError) -> str:
    err = e.errors(include_url=False, include_input=False)[0]
    ctx_error = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _FieldError):
        return f"{ctx_error.field}: {ctx_error}"
    return one_line(e, upper_first=True, root="configuration")
