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
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from providers import PLACEHOLDER_API_KEY, PRESETS, ProviderName, ProviderOptions, ProviderPreset

DEFAULT_INSTRUCTIONS = (
    "You are a helpful voice assistant. Your replies are spoken aloud, so keep them short "
    "and conversational, without lists, markdown, emojis or code."
)


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


class FallbackBackend(BaseModel):
    """One entry of `LLM_FALLBACKS`: the same fields as the primary backend."""

    model_config = ConfigDict(extra="forbid")

    provider: ProviderName = "openai-compatible"
    base_url: HttpUrl = None
    api_key: OptionalSecret = None
    model: OptionalText = None

    @field_validator("provider", mode="before")
    @classmethod
    def _lowercase(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
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

    # --- logging ---
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    log_format: Literal["json", "console"] = "json"

    @field_validator("log_level", "log_format", "llm_provider", "tool_pass_mode", mode="before")
    @classmethod
    def _lowercase(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("agent_instructions_file")
    @classmethod
    def _check_file(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_file():
            raise ValueError("expected the path of a readable text file")
        return v

    @model_validator(mode="after")
    def _check_backends(self) -> Settings:
        self.backends()  # raises _FieldError naming the variable
        return self

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
        primary = where == "LLM_"

        def name(field: str) -> str:
            return f"{where}{field.upper()}" if primary else f"{where}{field}"

        needed_by = f"LLM_PROVIDER={preset.name}" if primary else f"provider {preset.name}"
        if base_url is None and preset.default_base_url is None:
            raise _FieldError(
                name("base_url"),
                f"required for {needed_by} (the server's URL, e.g. http://localhost:8000/v1)",
            )
        if model is None and preset.default_model is None:
            raise _FieldError(
                name("model"), f"required for {needed_by} (the model name the server serves)"
            )
        key = api_key.get_secret_value() if api_key is not None else None
        if key is None and preset.api_key_env:
            key = os.environ.get(preset.api_key_env) or None
        if preset.requires_api_key and key is None:
            alternative = f" or {preset.api_key_env}" if preset.api_key_env else ""
            raise _FieldError(
                name("api_key"), f"required for {needed_by} (set {name('api_key')}{alternative})"
            )
        return preset, ProviderOptions(
            model=model or preset.default_model or "",
            base_url=base_url or preset.default_base_url or "",
            api_key=key or PLACEHOLDER_API_KEY,
            timeout=self.llm_timeout,
            temperature=self.llm_temperature,
            max_retries=self.llm_max_retries,
            # a lone backend is always worth another try; in a chain, skip a failing one
            cooldown_seconds=self.llm_cooldown if chained else 0.0,
        )

    def secrets(self) -> list[str]:
        """Values that must never reach a log line or a spoken word."""
        return [opts.api_key for _, opts in self.backends() if opts.api_key != PLACEHOLDER_API_KEY]


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
    except SettingsError as e:
        # pydantic-settings could not even decode the value (JSON fields)
        field = re.search(r'field "(\w+)"', str(e))
        name = field.group(1).upper() if field else "configuration"
        raise ConfigError(f"{name}: {_JSON_HINTS.get(name, 'expected valid JSON')}") from None


_JSON_HINTS = {
    "LLM_FALLBACKS": 'expected a JSON list like [{"provider": "groq", "model": "..."}]',
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
