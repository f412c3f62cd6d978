"""What every command runs on: the settings, with what they point at resolved and checked.

`load_config()` is the one start-up step of `start`, `chat` and `check`: it reads the
environment (`Settings`), resolves the backends (`Backends`) and reads the tool files,
so that any mistake, in an env var or in a file, stops start-up with one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from agent.config.backends import Backends, resolve_backends
from agent.config.settings import LIVEKIT_DEV_SECRET, ConfigError, Settings, load_settings
from agent.config.tool_files import (
    McpServerSpec,
    SpecError,
    WebhookSpec,
    load_mcp_config,
    load_webhook_tools,
)
from providers import EmbeddedSTTOptions, STTOptions
from providers.smart_turn import SMART_TURN_FILE

SESSIONS_PER_WORKER = 20
"""`capacity.voice_sessions_per_worker` in bench/results.json: a 2-core worker, STT on a server."""
SESSIONS_PER_WORKER_EMBEDDED = 8
"""`capacity.voice_sessions_per_worker_embedded`: the same, Moonshine in each session's process."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    settings: Settings
    backends: Backends
    mcp_servers: tuple[McpServerSpec, ...] = ()
    webhooks: tuple[WebhookSpec, ...] = ()
    tool_secrets: tuple[str, ...] = ()
    """Values expanded from `${VAR}` references in the tool files."""

    @property
    def sessions_per_worker(self) -> int:
        """`MAX_SESSIONS`, or unset: what a 2-core worker held in the capacity benchmark,
        whose STT in the worker (Moonshine) costs the sessions' own cores."""
        if self.settings.max_sessions is not None:
            return self.settings.max_sessions
        if isinstance(self.backends.stt_backends[0].options, EmbeddedSTTOptions):
            return SESSIONS_PER_WORKER_EMBEDDED
        return SESSIONS_PER_WORKER

    def secrets(self) -> list[str]:
        """Values that must never reach a log line or a spoken word: every key the
        configuration holds, used or not (a vendor's key set for another day, a password
        in a URL), not only those that will be sent."""
        settings = self.settings
        secrets = [*self.backends.api_keys(), *self.tool_secrets]
        secrets += env_secrets(settings.environ())
        urls = [settings.livekit_url, settings.otel_exporter_otlp_endpoint]
        urls += [b.options.base_url for b in self.backends.llm_backends]
        urls += [
            o.base_url for b in self.backends.stt_backends if isinstance(o := b.options, STTOptions)
        ]
        urls += [b.options.base_url for b in self.backends.tts_backends]
        urls += [w.url for w in self.webhooks] + [m.url for m in self.mcp_servers]
        secrets += url_secrets(u for u in urls if u)
        livekit_secret = settings.livekit_api_secret.get_secret_value()
        secrets.append(livekit_secret)
        if settings.settings_token is not None:
            secrets.append(settings.settings_token.get_secret_value())
        return [s for s in dict.fromkeys(secrets) if s and s != LIVEKIT_DEV_SECRET]


def resolve(settings: Settings) -> Config:
    """Resolve `settings` into a `Config`; `ConfigError` names the first problem."""
    backends = resolve_backends(settings)
    model = settings.model_cache_dir / SMART_TURN_FILE
    if settings.turn_detection == "smart-turn" and not model.is_file():
        raise ConfigError(
            f"TURN_DETECTION: smart-turn needs its model, not found at {model}; "
            "run `voice-agent download-files` (with the same MODEL_CACHE_DIR)"
        )
    # `${VAR}` references in the tool files come from the environment (and .env)
    env = settings.environ()
    mcp_servers: list[McpServerSpec] = []
    webhooks: list[WebhookSpec] = []
    secrets: list[str] = []
    try:
        if settings.mcp_config is not None:
            mcp = load_mcp_config(settings.mcp_config, env)
            mcp_servers, secrets = mcp.specs, [*mcp.secrets]
    except SpecError as e:
        raise ConfigError(f"MCP_CONFIG: {e}") from None
    try:
        if settings.webhook_tools is not None:
            hooks = load_webhook_tools(settings.webhook_tools, env)
            webhooks, secrets = hooks.specs, [*secrets, *hooks.secrets]
    except SpecError as e:
        raise ConfigError(f"WEBHOOK_TOOLS: {e}") from None
    return Config(
        settings=settings,
        backends=backends,
        mcp_servers=tuple(mcp_servers),
        webhooks=tuple(webhooks),
        tool_secrets=tuple(secrets),
    )


# variables whose values are credentials, whatever reads them (LIVEKIT_API_KEY is the
# id that goes with the secret: LiveKit shows it, and so may we)
_SECRET_VARIABLE = re.compile(r"(?:^|_)(?:API_?KEY|SECRET|TOKEN|PASSWORD|PASSWD)$", re.I)
_NOT_SECRET = frozenset({"LIVEKIT_API_KEY"})
_SECRET_QUERY = re.compile(
    r"(?:api[_-]?key|key|token|access_token|auth|password|secret|sig)$", re.I
)
_MIN_GUESSED = 8
"""A variable's value is taken for a key by its name; a short one would be a word."""


def env_secrets(env: Mapping[str, str]) -> list[str]:
    """The values of `env` named like credentials: GROQ_API_KEY, GITHUB_TOKEN, ..."""
    return [
        value
        for name, value in env.items()
        if _SECRET_VARIABLE.search(name)
        and name.upper() not in _NOT_SECRET
        and len(value) >= _MIN_GUESSED
    ]


def url_secrets(urls: Iterable[str]) -> list[str]:
    """The passwords (or lone tokens) in URLs' userinfo, and their credential query
    values, as written and decoded."""
    found: list[str] = []
    for url in urls:
        parts = urlsplit(url)
        # the authority ends at its last "@": an unencoded "@" belongs to the password
        userinfo, at, _ = parts.netloc.rpartition("@")
        if at:
            user, colon, password = userinfo.partition(":")
            found.append(password if colon else user)
        found += [v for k, v in parse_qsl(parts.query) if _SECRET_QUERY.search(k)]
    return [v for raw in found for v in {raw, unquote(raw)} if len(v) >= 4]


def load_config(**overrides: object) -> Config:
    """Read the environment (and `.env`) and resolve it; `ConfigError` on the first problem."""
    return resolve(load_settings(**overrides))
