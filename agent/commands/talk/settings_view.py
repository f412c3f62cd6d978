"""What the settings view shows: each role's backend, whether it works, and the servers
on this machine, as JSON that never holds a key.

The pieces are the commands' own: a role's state is what `voice-agent check` probes
(`providers.probes`, `check.probe_livekit`), the servers are what `voice-agent setup`
finds (`providers.discovery`, `setup.choices`), and the values shown are those the
worker resolves (`agent.config`). A key is never shown, only whether one is set and in
which variable; a URL never shows its userinfo; a server's own words (a probe's
reason) are scrubbed of every key the process knows, whole or in part, before they
leave.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent.commands.check import probe_livekit
from agent.commands.setup.choices import owned_variables, provider_for
from agent.config.live import load_file, revision_of
from agent.config.resolved import Config
from agent.config.settings import ConfigError, Settings, environment_names, file_and_environ
from agent.ops.logging import redact, shorten
from agent.wiring import build_llm_backends
from providers import (
    PLACEHOLDER_API_KEY,
    PRESETS,
    STT_PRESETS,
    TTS_PRESETS,
    EmbeddedSTTOptions,
    STTOptions,
)
from providers.discovery import Role, Server, candidates, discover, root_url
from providers.probes import ProbeResult, probe_llm, probe_stt, probe_tts
from providers.urls import split_userinfo

ROLES: tuple[Role, ...] = ("llm", "stt", "tts")
PROVIDERS: dict[Role, tuple[str, ...]] = {
    "llm": tuple(PRESETS),
    "stt": tuple(STT_PRESETS),
    "tts": tuple(TTS_PRESETS),
}
_DETAIL_CHARS = 240
_REDACTED = "[redacted]"
_WORD = re.compile(r"[^\s'\"`,;()<>\[\]{}]+")


@dataclass(frozen=True, slots=True)
class State:
    ok: bool | None
    """None: not checked."""
    detail: str


@dataclass(slots=True, kw_only=True)
class RoleView:
    role: str
    name: str
    provider: str
    base_url: str | None
    model: str | None = None
    voice: str | None = None
    key_set: bool = False
    key_from: str | None = None
    """The variable the key is read from (`LLM_API_KEY`, `GROQ_API_KEY`), never the key."""
    fallbacks: int = 0
    editable: bool = True
    overridden: list[str] = field(default_factory=list)
    """This role's variables that the environment of `voice-agent talk` sets: they win
    over `.env`, so saving them here changes nothing while that lasts."""
    state: State = State(None, "not checked")


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` without any of `secrets`, whole or shown in part (a vendor's error that
    quotes `sk-ab…wxyz`), nor any credential by its shape; one line, cut to size."""
    keys = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
    for key in keys:
        text = text.replace(key, _REDACTED)

    def part_of_a_key(m: re.Match[str]) -> str:
        word = m.group()
        for key in keys:
            if len(key) >= 8 and (key[:4] in word or key[-4:] in word):
                return _REDACTED
        return word

    return shorten(_WORD.sub(part_of_a_key, redact(text)), _DETAIL_CHARS)


def _shown_url(url: str | None) -> str | None:
    return split_userinfo(url)[0] if url else None


def _server_url(options: STTOptions | EmbeddedSTTOptions) -> str | None:
    """None for an STT in the worker (Moonshine): nothing to point at."""
    return None if isinstance(options, EmbeddedSTTOptions) else options.base_url


def _key_from(setting: str, preset_env: str | None, settings: Settings) -> str | None:
    prefix = setting.lower()
    if getattr(settings, f"{prefix}_api_key") is not None:
        return f"{setting}_API_KEY"
    if preset_env and settings.environ().get(preset_env):
        return preset_env
    return None


def role_views(config: Config) -> list[RoleView]:
    """The four roles as the configuration resolves them, states not yet checked."""
    settings, backends = config.settings, config.backends
    llm, stt, tts = backends.llm_backends[0], backends.stt_backends[0], backends.tts_backends[0]
    env = environment_names()
    views = [
        RoleView(
            role="llm",
            name="LLM",
            provider=settings.llm_provider,
            base_url=_shown_url(llm.options.base_url),
            model=llm.options.model,
            key_from=_key_from("LLM", llm.preset.api_key_env, settings),
            fallbacks=len(backends.llm_backends) - 1,
        ),
        RoleView(
            role="stt",
            name="STT",
            provider=settings.stt_provider,
            base_url=_shown_url(_server_url(stt.options)),
            model=stt.options.model,
            key_from=_key_from("STT", STT_PRESETS[settings.stt_provider].api_key_env, settings),
            fallbacks=len(backends.stt_backends) - 1,
        ),
        RoleView(
            role="tts",
            name="TTS",
            provider=settings.tts_provider,
            base_url=_shown_url(tts.options.base_url),
            model=tts.options.model,
            voice=tts.options.voice,
            key_from=_key_from("TTS", TTS_PRESETS[settings.tts_provider].api_key_env, settings),
            fallbacks=len(backends.tts_backends) - 1,
        ),
    ]
    for role, view in zip(ROLES, views, strict=True):
        view.key_set = view.key_from is not None
        key_names = {view.key_from} if view.key_from else set()
        view.overridden = sorted(env & {*owned_variables(role), *key_names})
    views.append(livekit_view(settings, env))
    return views


def livekit_view(settings: Settings, env: set[str]) -> RoleView:
    names = {"LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LIVEKIT_AGENT_NAME"}
    return RoleView(
        role="livekit",
        name="LiveKit",
        provider="livekit",
        base_url=_shown_url(settings.livekit_url),
        key_set=True,  # a key and secret always are: livekit-server --dev's by default
        key_from="LIVEKIT_API_KEY / LIVEKIT_API_SECRET",
        editable=False,
        overridden=sorted(env & names),
    )


def raw_role_views(env_file: Path) -> list[RoleView]:
    """The roles as written, for a file that does not load: no defaults filled in."""
    values = {k.upper(): v for k, v in file_and_environ(env_file).items() if v}
    env = environment_names()
    views = []
    for role in ROLES:
        prefix = role.upper()
        default = Settings.model_fields[f"{role}_provider"].default
        views.append(
            RoleView(
                role=role,
                name=role.upper(),
                provider=values.get(f"{prefix}_PROVIDER", default),
                base_url=_shown_url(values.get(f"{prefix}_BASE_URL")),
                model=values.get(f"{prefix}_MODEL"),
                voice=values.get("TTS_VOICE") if role == "tts" else None,
                key_set=f"{prefix}_API_KEY" in values,
                key_from=f"{prefix}_API_KEY" if f"{prefix}_API_KEY" in values else None,
                overridden=sorted(env & set(owned_variables(role))),
            )
        )
    lk_url = values.get("LIVEKIT_URL", Settings.model_fields["livekit_url"].default)
    views.append(
        RoleView(role="livekit", name="LiveKit", provider="livekit", base_url=_shown_url(lk_url))
    )
    return views


async def probe_roles(
    config: Config, roles: Sequence[str], *, request_timeout: float, secrets: Iterable[str] = ()
) -> dict[str, State]:
    """`check`'s probe of each role's primary backend, at once; reasons scrubbed."""
    keys = [*config.secrets(), *secrets]
    backends = config.backends
    llms = build_llm_backends(config)[:1] if "llm" in roles else []
    probes: dict[str, Any] = {}
    if llms:
        probes["llm"] = probe_llm(llms[0], request_timeout=request_timeout)
    if "stt" in roles:
        probes["stt"] = probe_stt(backends.stt_backends[0].options, request_timeout=request_timeout)
    if "tts" in roles:
        probes["tts"] = probe_tts(backends.tts_backends[0].options, request_timeout=request_timeout)
    if "livekit" in roles:
        probes["livekit"] = probe_livekit(config.settings, request_timeout=request_timeout)
    try:
        results: list[ProbeResult] = await asyncio.gather(*probes.values())
    finally:
        for llm in llms:
            await llm.aclose()
    return {
        role: State(result.ok, scrub(result.detail, keys))
        for role, result in zip(probes, results, strict=True)
    }


async def settings_view(env_file: Path, *, probe_timeout: float) -> dict[str, Any]:
    """`GET /api/settings`: the configuration `.env` gives now, each role probed."""
    body: dict[str, Any] = {
        "env_file": str(env_file),
        "revision": revision_of(env_file),
        "error": None,
        "providers": PROVIDERS,
    }
    try:
        config = load_file(env_file)
    except ConfigError as e:
        body["error"] = str(e)
        views = raw_role_views(env_file)
        for view in views:
            view.state = State(None, "not checked: the configuration does not load")
        body["roles"] = [asdict(v) for v in views]
        return body
    views = role_views(config)
    states = await probe_roles(config, [v.role for v in views], request_timeout=probe_timeout)
    for view in views:
        view.state = states[view.role]
    body["roles"] = [asdict(v) for v in views]
    return body


# --- the servers on this machine -------------------------------------------------------


def configured_servers(config: Config | None) -> tuple[list[str], dict[str, str]]:
    """The roots of the configured backends (scanned too, so their models are listed) and
    the key each is configured with (sent to that server only)."""
    if config is None:
        return [], {}
    backends = config.backends
    options = [o.options for o in (backends.llm_backends[0], backends.tts_backends[0])]
    stt = backends.stt_backends[0].options
    where = [
        (o.base_url, o.api_key) for o in (*options, stt) if not isinstance(o, EmbeddedSTTOptions)
    ]
    urls: list[str] = []
    keys: dict[str, str] = {}
    for base_url, api_key in where:
        root = root_url(split_userinfo(base_url)[0])
        if root not in urls:
            urls.append(root)
        if api_key and api_key != PLACEHOLDER_API_KEY and root not in keys:
            keys[root] = api_key
    return urls, keys


def server_json(server: Server, secrets: Sequence[str]) -> dict[str, Any]:
    """A server found, and what it offers each role; what the server said (its model
    names, why it failed) is scrubbed like a probe's reason."""
    roles: dict[str, Any] = {}
    if server.usable:
        for role in ROLES:
            if role in server.roles or not server.models:
                models = [scrub(m, secrets) for m in server.models_for(role)]
                roles[role] = {
                    "provider": provider_for(server, role),
                    "base_url": server.api_url,
                    "models": [m for m in models if _REDACTED not in m],
                }
    return {
        "kind": server.kind,
        "url": _shown_url(server.url),
        "status": server.status,
        "detail": scrub(server.detail, secrets),
        "roles": roles,
    }


async def scan(
    *,
    hosts: Sequence[str],
    urls: Sequence[str],
    config: Config | None,
    request_timeout: float,
) -> list[dict[str, Any]]:
    """`GET /api/settings/servers`: what `setup` finds, and the configured servers."""
    configured, keys = configured_servers(config)
    targets: list[tuple[str, str]] = []
    for kind, url in candidates(hosts, [*urls, *configured]):
        if url not in (u for _, u in targets):
            targets.append((kind, url))
    found = await discover(targets, request_timeout=request_timeout, api_keys=keys)
    secrets = [*keys.values(), *(config.secrets() if config else [])]
    return [server_json(s, secrets) for s in found]
