"""Settings: the one place the environment is read and validated.

A wrong or missing value stops start-up with `ConfigError`, whose message is one
line naming the variable and what it expects.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from providers import PLACEHOLDER_API_KEY, PRESETS, ProviderName, ProviderOptions, ProviderPreset

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

    # --- logging ---
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    log_format: Literal["json", "console"] = "json"

    @field_validator("log_level", "log_format", "llm_provider", "tool_pass_mode", mode="before")
    @classmethod
    def _lowercase(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator(
        "llm_base_url", "llm_model", "llm_api_key", "agent_instructions", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("llm_base_url")
    @classmethod
    def _check_url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        parts = urlsplit(v.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("expected an http(s) URL such as http://localhost:8000/v1")
        return v.strip()

    @field_validator("mcp_config", "webhook_tools", mode="before")
    @classmethod
    def _empty_path_is_unset(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

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
        return self

    @model_validator(mode="after")
    def _load_tool_files(self) -> Settings:
        # the files are read here so that a mistake in them stops start-up like any
        # other bad setting; `${VAR}` references come from the environment (and .env)
        env = {**_dotenv(self.model_config.get("env_file")), **os.environ}
        try:
            if self.mcp_config is not None:
                mcp = load_mcp_config(self.mcp_config, env)
                self._mcp_servers, self._tool_secrets = mcp.specs, [*mcp.secrets]
        except SpecError as e:
            raise _FieldError("mcp_config", str(e)) from None
        try:
            if self.webhook_tools is not None:
                hooks = load_webhook_tools(self.webhook_tools, env)
                self._webhooks = hooks.specs
                self._tool_secrets += hooks.secrets
        except SpecError as e:
            raise _FieldError("webhook_tools", str(e)) from None
        return self

    @property
    def mcp_servers(self) -> list[McpServerSpec]:
        return self._mcp_servers

    @property
    def webhooks(self) -> list[WebhookSpec]:
        return self._webhooks

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

    def secrets(self) -> list[str]:
        """Values that must never reach a log line or a spoken word."""
        key = self.api_key
        return [*([key] if key and key != PLACEHOLDER_API_KEY else []), *self._tool_secrets]


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
