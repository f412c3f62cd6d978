"""Settings: the one place the environment is read and validated.

A wrong or missing value stops start-up with `ConfigError`, whose message is one
line naming the variable and what it expects.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

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

from .tools.specs import (
    McpServerSpec,
    SpecError,
    WebhookSpec,
    load_mcp_config,
    load_webhook_tools,
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


def _http_url(v: str | None) -> str | None:
    if v is None:
        return None
    parts = urlsplit(v.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an http(s) URL such as http://localhost:8000/v1")
    return v.strip()


def _blank_is_none(v: object) -> object:
    return None if isinstance(v, str) and not v.strip() else v


HttpUrl = Annotated[str | None, BeforeValidator(_blank_is_none), AfterValidator(_http_url)]
OptionalText = Annotated[str | None, BeforeValidator(_blank_is_none)]
OptionalSecret = Annotated[SecretStr | None, BeforeValidator(_blank_is_none)]


class _Backend(BaseModel):
    """The fields every fallback entry shares with its primary backend."""

    model_config = ConfigDict(extra="forbid")

    provider: str = "openai-compatible"
    base_url: HttpUrl = None
    api_key: OptionalSecret = None
    model: OptionalText = None

    @field_validator("provider", mode="before")
    @classmethod
    def _lowercase(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v


class FallbackBackend(_Backend):
    """One entry of `LLM_FALLBACKS`."""

    provider: ProviderName = "openai-compatible"


class SpeechFallback(_Backend):
    """One entry of `STT_FALLBACKS` / `TTS_FALLBACKS` (providers checked per kind later)."""

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
    llm_provider: ProviderName = "openai-compatible"
    llm_base_url: HttpUrl = None
    llm_api_key: OptionalSecret = None
    llm_model: OptionalText = None
    llm_timeout: PositiveSeconds = 30.0
    llm_temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    llm_max_retries: Annotated[int, Field(ge=0, le=10)] = 1
    llm_fallbacks: list[FallbackBackend] = Field(default_factory=list)
    llm_cooldown: Annotated[float, Field(ge=0, le=3600)] = 30.0

    # --- agent behaviour ---
    agent_instructions: OptionalText = None
    agent_instructions_file: Path | None = None
    agent_apology: str = "Sorry, I'm having trouble answering right now. Please try again."
    agent_fallback_reply: str = "Sorry, I don't have an answer to that."
    tool_pass_mode: Literal["streamed", "blocking"] = "streamed"
    max_tool_rounds: Annotated[int, Field(ge=1, le=20)] = 1
    tool_timeout: PositiveSeconds = 10.0
    builtin_tools: bool = True
    tool_filler: str = "One moment."
    tool_filler_delay: Annotated[float, Field(ge=0, le=60)] = 0.7
    tool_result_max_chars: Annotated[int, Field(ge=200, le=1_000_000)] = 4000

    # --- configured tools (files; their ${VAR} references are expanded from the env) ---
    mcp_config: Path | None = None
    mcp_connect_timeout: PositiveSeconds = 5.0
    webhook_tools: Path | None = None

    # --- history ---
    history_max_turns: Annotated[int, Field(ge=1, le=1000)] = 20
    history_tool_result_max_chars: Annotated[int, Field(ge=0, le=1_000_000)] = 500

    _mcp_servers: list[McpServerSpec] = PrivateAttr(default_factory=list)
    _webhooks: list[WebhookSpec] = PrivateAttr(default_factory=list)
    _tool_secrets: list[str] = PrivateAttr(default_factory=list)
    _environ: dict[str, str] | None = PrivateAttr(default=None)

    # --- speech backends (OpenAI audio API) ---
    stt_provider: STTProviderName = "speaches"
    stt_base_url: HttpUrl = None
    stt_api_key: OptionalSecret = None
    stt_model: OptionalText = None
    stt_language: str = "en"
    tts_provider: TTSProviderName = "kokoro"
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

    # --- LiveKit worker ---
    livekit_url: str = "ws://localhost:7880"
    livekit_api_key: str = "devkey"
    livekit_api_secret: SecretStr = SecretStr(LIVEKIT_DEV_SECRET)
    livekit_agent_name: str = ""
    worker_port: Annotated[int, Field(ge=0, le=65535)] = 8081
    worker_connect_retries: Annotated[int, Field(ge=0, le=1000)] = 16
    worker_drain_timeout: Annotated[int, Field(ge=0, le=86400)] = 1800
    # load reported to LiveKit = active sessions / MAX_SESSIONS; at LOAD_THRESHOLD LiveKit
    # stops dispatching here. The default is what one 2-core worker held in the capacity
    # benchmark (BENCHMARKS.md) with p95 end of speech -> first audio within +100 ms
    max_sessions: Annotated[int, Field(ge=1, le=10_000)] = 20
    load_threshold: Annotated[float, Field(gt=0, le=1)] = 1.0

    # --- observability ---
    prometheus_multiproc_dir: Path | None = None
    """Where job processes leave their metrics for `/metrics`; unset: a fresh temp dir."""
    otel_exporter_otlp_endpoint: HttpUrl = None

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

    @field_validator("mcp_config", "webhook_tools", "prometheus_multiproc_dir", mode="before")
    @classmethod
    def _empty_path_is_unset(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

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
    def _check_backends(self) -> Settings:
        self.backends()  # raises _FieldError naming the variable
        if self.endpointing_max_delay < self.endpointing_min_delay:
            raise _FieldError(
                "ENDPOINTING_MAX_DELAY", "must not be less than ENDPOINTING_MIN_DELAY"
            )
        self.stt_backends()
        self.tts_backends()
        return self

    @model_validator(mode="after")
    def _load_tool_files(self) -> Settings:
        # the files are read here so that a mistake in them stops start-up like any
        # other bad setting; `${VAR}` references come from the environment (and .env)
        env = self.environ()
        try:
            if self.mcp_config is not None:
                mcp = load_mcp_config(self.mcp_config, env)
                self._mcp_servers, self._tool_secrets = mcp.specs, [*mcp.secrets]
        except SpecError as e:
            raise _FieldError("MCP_CONFIG", str(e)) from None
        try:
            if self.webhook_tools is not None:
                hooks = load_webhook_tools(self.webhook_tools, env)
                self._webhooks = hooks.specs
                self._tool_secrets += hooks.secrets
        except SpecError as e:
            raise _FieldError("WEBHOOK_TOOLS", str(e)) from None
        return self

    def environ(self) -> dict[str, str]:
        """The process environment over `.env`: where vendor keys (`GROQ_API_KEY`) and
        `${VAR}` references in tool files are looked up, as users expect of `.env`."""
        if self._environ is None:
            self._environ = {**_dotenv(self.model_config.get("env_file")), **os.environ}
        return self._environ

    @property
    def mcp_servers(self) -> list[McpServerSpec]:
        return self._mcp_servers

    @property
    def webhooks(self) -> list[WebhookSpec]:
        return self._webhooks

    @property
    def instructions(self) -> str:
        if self.agent_instructions_file is not None:
            return self.agent_instructions_file.read_text(encoding="utf-8").strip()
        return self.agent_instructions or DEFAULT_INSTRUCTIONS

    def backends(self) -> list[tuple[ProviderPreset, ProviderOptions]]:
        """The primary LLM backend, then each of `LLM_FALLBACKS`, in order."""
        entries = [
            ("LLM_", self.llm_provider, self.llm_base_url, self.llm_api_key, self.llm_model),
            *(
                (f"LLM_FALLBACKS[{i}].", f.provider, f.base_url, f.api_key, f.model)
                for i, f in enumerate(self.llm_fallbacks)
            ),
        ]
        chained = len(entries) > 1
        return [
            self._backend(where, PRESETS[name], url, key, model, chained=chained)
            for where, name, url, key, model in entries
        ]

    def _backend(
        self,
        where: str,
        preset: ProviderPreset,
        base_url: str | None,
        api_key: SecretStr | None,
        model: str | None,
        *,
        chained: bool,
    ) -> tuple[ProviderPreset, ProviderOptions]:
        base_url, model, key = self._resolve(where, preset, base_url, api_key, model)
        return preset, ProviderOptions(
            model=model,
            base_url=base_url,
            api_key=key,
            timeout=self.llm_timeout,
            temperature=self.llm_temperature,
            max_retries=self.llm_max_retries,
            # a lone backend is always worth another try; in a chain, skip a failing one
            cooldown_seconds=self.llm_cooldown if chained else 0.0,
        )

    def stt_backends(self) -> list[STTOptions]:
        """The STT backend, then each of `STT_FALLBACKS`, in order."""
        entries = [
            ("STT_", self.stt_provider, self.stt_base_url, self.stt_api_key, self.stt_model, None),
            *(
                (f"STT_FALLBACKS[{i}].", f.provider, f.base_url, f.api_key, f.model, f.voice)
                for i, f in enumerate(self.stt_fallbacks)
            ),
        ]
        return [
            STTOptions(base_url=url, model=model, api_key=key, language=self.stt_language)
            for url, model, key, _ in (self._speech("stt", *entry) for entry in entries)
        ]

    def tts_backends(self) -> list[TTSOptions]:
        """The TTS backend, then each of `TTS_FALLBACKS`, in order."""
        entries = [
            (
                "TTS_",
                self.tts_provider,
                self.tts_base_url,
                self.tts_api_key,
                self.tts_model,
                self.tts_voice,
            ),
            *(
                (f"TTS_FALLBACKS[{i}].", f.provider, f.base_url, f.api_key, f.model, f.voice)
                for i, f in enumerate(self.tts_fallbacks)
            ),
        ]
        return [
            TTSOptions(base_url=url, model=model, api_key=key, voice=voice)
            for url, model, key, voice in (self._speech("tts", *entry) for entry in entries)
        ]

    def stt_options(self) -> STTOptions:
        return self.stt_backends()[0]

    def tts_options(self) -> TTSOptions:
        return self.tts_backends()[0]

    def _speech(
        self,
        kind: Literal["stt", "tts"],
        where: str,
        provider: str,
        base_url: str | None,
        api_key: SecretStr | None,
        model: str | None,
        voice: str | None,
    ) -> tuple[str, str, str, str]:
        """(base_url, model, api_key, voice) of one speech backend, or a `_FieldError`."""
        presets = STT_PRESETS if kind == "stt" else TTS_PRESETS
        preset = presets.get(provider)
        if preset is None:  # the primary's provider is a Literal; fallbacks are checked here
            choices = ", ".join(repr(p) for p in presets)
            raise _FieldError(_var(where, "provider"), f"expected one of {choices}")
        base_url, model, key = self._resolve(where, preset, base_url, api_key, model)
        if kind == "tts" and voice is None and preset.default_voice is None:
            raise _FieldError(
                _var(where, "voice"), f"required for {_needed_by(where, preset)} (a voice)"
            )
        return base_url.rstrip("/"), model, key, voice or preset.default_voice or ""

    def _resolve(
        self,
        where: str,
        preset: ProviderPreset | SpeechPreset,
        base_url: str | None,
        api_key: SecretStr | None,
        model: str | None,
    ) -> tuple[str, str, str]:
        """(base_url, model, api_key) of one backend with its preset's defaults, or a
        `_FieldError` naming what is missing (`LLM_MODEL`, `STT_FALLBACKS[1].api_key`)."""
        needed_by = _needed_by(where, preset)
        base_url = base_url or preset.default_base_url
        if base_url is None:
            raise _FieldError(
                _var(where, "base_url"),
                f"required for {needed_by} (the server's URL, e.g. http://localhost:8000/v1)",
            )
        model = model or preset.default_model
        if model is None:
            raise _FieldError(
                _var(where, "model"), f"required for {needed_by} (the model name the server serves)"
            )
        key = api_key.get_secret_value() if api_key is not None else None
        if key is None and preset.api_key_env:
            key = self.environ().get(preset.api_key_env) or None
        if preset.requires_api_key and key is None:
            alternative = f" or {preset.api_key_env}" if preset.api_key_env else ""
            raise _FieldError(
                _var(where, "api_key"),
                f"required for {needed_by} (set {_var(where, 'api_key')}{alternative})",
            )
        return base_url, model, key or PLACEHOLDER_API_KEY

    def secrets(self) -> list[str]:
        """Values that must never reach a log line or a spoken word."""
        keys: list[str | None] = [opts.api_key for _, opts in self.backends()]
        keys += [o.api_key for o in self.stt_backends()]
        keys += [o.api_key for o in self.tts_backends()]
        lk_secret = self.livekit_api_secret.get_secret_value()
        if lk_secret != LIVEKIT_DEV_SECRET:
            keys.append(lk_secret)
        return [k for k in keys if k and k != PLACEHOLDER_API_KEY] + self._tool_secrets


def _var(where: str, field: str) -> str:
    """`LLM_` + `model`: `LLM_MODEL`; `LLM_FALLBACKS[1].` + `model`: `LLM_FALLBACKS[1].model`."""
    return f"{where}{field}" if "[" in where else f"{where}{field.upper()}"


def _needed_by(where: str, preset: ProviderPreset | SpeechPreset) -> str:
    return f"provider {preset.name}" if "[" in where else f"{where}PROVIDER={preset.name}"


class _FieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _dotenv(env_file: object) -> dict[str, str]:
    if not isinstance(env_file, (str, Path)) or not Path(env_file).is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(env_file).items() if v is not None}


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
    loc = err["loc"]
    field = str(loc[0]).upper() if loc else "configuration"
    for part in loc[1:]:
        field += f"[{part}]" if isinstance(part, int) else f".{part}"
    message = err["msg"].removeprefix("Value error, ")
    if message.startswith("Input should be "):
        message = "expected " + message.removeprefix("Input should be ").replace("a valid ", "a ")
    return f"{field}: {message}".replace("\n", " ")
