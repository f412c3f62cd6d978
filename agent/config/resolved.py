"""What every command runs on: the settings, with what they point at resolved and checked.

`load_config()` is the one start-up step of `start`, `chat` and `check`: it reads the
environment (`Settings`), resolves the backends (`Backends`) and reads the tool files,
so that any mistake, in an env var or in a file, stops start-up with one line.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.config.backends import Backends, resolve_backends
from agent.config.settings import LIVEKIT_DEV_SECRET, ConfigError, Settings, load_settings
from agent.config.tool_files import (
    McpServerSpec,
    SpecError,
    WebhookSpec,
    load_mcp_config,
    load_webhook_tools,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    settings: Settings
    backends: Backends
    mcp_servers: tuple[McpServerSpec, ...] = ()
    webhooks: tuple[WebhookSpec, ...] = ()
    tool_secrets: tuple[str, ...] = ()
    """Values expanded from `${VAR}` references in the tool files."""

    def secrets(self) -> list[str]:
        """Values that must never reach a log line or a spoken word."""
        secrets = [*self.backends.api_keys(), *self.tool_secrets]
        livekit_secret = self.settings.livekit_api_secret.get_secret_value()
        if livekit_secret != LIVEKIT_DEV_SECRET:
            secrets.append(livekit_secret)
        if self.settings.settings_token is not None:
            secrets.append(self.settings.settings_token.get_secret_value())
        return secrets


def resolve(settings: Settings) -> Config:
    """Resolve `settings` into a `Config`; `ConfigError` names the first problem."""
    backends = resolve_backends(settings)
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


def load_config(**overrides: object) -> Config:
    """Read the environment (and `.env`) and resolve it; `ConfigError` on the first problem."""
    return resolve(load_settings(**overrides))
