"""Settings: the one place the environment is read and validated.

The variables themselves (types, defaults, descriptions) are the groups of
`agent.config.schema`; `Settings` gathers them, reads them from the environment and
`.env`, and checks what spans groups. A wrong or missing value stops start-up with
`ConfigError`, whose message is one line naming the variable and what it expects.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import PrivateAttr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from agent.config.schema import (
    LIVEKIT_DEV_SECRET,
    AgentSettings,
    FastTurnSettings,
    HistorySettings,
    LLMFallback,
    LLMSettings,
    LoggingSettings,
    ObservabilitySettings,
    SpeechFallback,
    SpeechSettings,
    TalkSettings,
    ToolFileSettings,
    VoiceSettings,
    WorkerSettings,
)
from agent.config.validation import one_line

__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "LIVEKIT_DEV_SECRET",
    "MODEL_MIN_SILENCE",
    "ConfigError",
    "LLMFallback",
    "Settings",
    "SpeechFallback",
    "environment_names",
    "file_and_environ",
    "load_settings",
    "overridden_by_environment",
]

DEFAULT_INSTRUCTIONS = (
    "You are a helpful voice assistant. Your replies are spoken aloud, so keep them short "
    "and conversational, without lists, markdown, emojis or code. For anything that depends "
    "on the current time or date, live data, or an action, call one of your tools and answer "
    "from its result; never guess. If no tool can do it, say so."
)
"""The system prompt when none is configured. Its tool sentences are measured: without
them a small model guessed the time instead of calling the clock (docs/real-model.md)."""


MODEL_MIN_SILENCE = 0.25
"""The shortest VAD silence livekit accepts with its end-of-turn model (its 0.2 s + 0.05)."""


class ConfigError(Exception):
    """A setting is missing or malformed; the message is the one line to show the user."""


# pydantic gathers the fields of the last base first: the groups are listed last to first
# so that fields (and the first error reported) keep the order of agent/config/schema.py
class Settings(
    LoggingSettings,
    ObservabilitySettings,
    TalkSettings,
    WorkerSettings,
    FastTurnSettings,
    VoiceSettings,
    SpeechSettings,
    HistorySettings,
    ToolFileSettings,
    AgentSettings,
    LLMSettings,
    BaseSettings,
):
    """Every variable, from the environment (which wins) or `.env` in the working directory."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # `VAR=` (as in .env.example) means "not set", not "set to nothing"
        env_ignore_empty=True,
        use_attribute_docstrings=True,
    )

    _environ: dict[str, str] | None = PrivateAttr(default=None)
    _env_file: object = PrivateAttr(default=None)
    """The `.env` read, when given at load (`load_settings(_env_file=...)`)."""

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
            env_file = self._env_file or self.model_config.get("env_file")
            self._environ = {**_dotenv(env_file), **os.environ}
        return self._environ

    def in_container(self) -> bool:
        """Whether this process runs in a container (Docker, Podman, a Kubernetes pod)."""
        markers = (Path("/.dockerenv"), Path("/run/.containerenv"))
        return "KUBERNETES_SERVICE_HOST" in self.environ() or any(p.exists() for p in markers)

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


def env_file_values(env_file: Path) -> dict[str, str]:
    """What `env_file` sets, read as `Settings` reads it (nothing if there is no file)."""
    return _dotenv(env_file)


def file_and_environ(env_file: Path) -> dict[str, str]:
    """The process environment over `env_file`, as `Settings` sees them: what `voice-agent
    setup` reads to know the current choices and the vendor keys already set."""
    return {**_dotenv(env_file), **os.environ}


def overridden_by_environment(env_file: Path) -> list[str]:
    """The variables `env_file` sets that the process environment sets too: the
    environment wins, so the file's values for them are not used."""
    return sorted({k.upper() for k in _dotenv(env_file)} & environment_names())


def environment_names() -> set[str]:
    """The variables the process environment sets (upper-cased; empty ones count as unset,
    as they do for `Settings`)."""
    return {k.upper() for k, v in os.environ.items() if v}


def load_settings(**overrides: object) -> Settings:
    """Read and validate the environment (and `.env`); raise `ConfigError` on the first problem."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        raise ConfigError(_one_line(e)) from None
    except SettingsError as e:
        # pydantic-settings could not even decode the value (JSON fields)
        field = re.search(r'field "(\w+)"', str(e))
        name = field.group(1).upper() if field else "configuration"
        raise ConfigError(f"{name}: {_JSON_HINTS.get(name, 'expected valid JSON')}") from None
    # vendor keys and `${VAR}` in tool files come from the same file as the settings
    settings._env_file = overrides.get("_env_file")
    return settings


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
