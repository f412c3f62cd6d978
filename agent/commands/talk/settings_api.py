"""The settings view of `voice-agent talk`: `/settings` and the JSON API under it.

- `GET /api/settings`: each role's backend and its state (`settings_view`).
- `GET /api/settings/servers[?url=URL]`: the servers `setup` finds (and URL).
- `POST /api/settings/test`: a change, validated and probed; nothing is written.
- `PUT /api/settings`: a change, validated and written to `.env`; answers the new view.

A change names roles and the fields to set, `{"llm": {"provider": ..., "base_url": ...,
"model": ..., "api_key": ...}}` (`voice` for TTS too). Another server for a role (its
provider or URL changed) rewrites all of that role's variables as `setup` does: what is
not given goes back to the provider's default, the key included, so a key is never sent
to a server it was not given for. The same server keeps what is not given (a new model
keeps the key). An `api_key` of "" removes the role's key.

A change is checked as the worker will read it: the `.env` it would make is written to a
private scratch directory by `setup`'s writer and loaded with the start-up validation
(`load_config`); a bad value is a 400 with that one line. A good one is written by the
same writer: the other lines kept, a backup made, one atomic rename, 0600 when it holds
a key. A running worker takes it for the sessions that start after (`agent.config.live`).

Access: every `/api/settings*` request comes from the page's own origin (`same_origin`)
and carries `Authorization: Bearer <token>` (`bearer_token`): 401 without it, 403 with
another. No response holds a key: keys go in, never out.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from agent.commands.setup.choices import owned_variables
from agent.commands.setup.envfile import write_env_file
from agent.commands.talk.settings_view import (
    ROLES,
    State,
    probe_roles,
    scan,
    settings_view,
)
from agent.commands.talk.static import NO_STORE, asset_handler, static_file
from agent.config.live import load_file, revision_of
from agent.config.resolved import Config
from agent.config.settings import (
    ConfigError,
    Settings,
    env_file_values,
    environment_names,
    file_and_environ,
)
from providers.discovery import Role

API_PREFIX = "/api/settings"
_FIELDS = {"provider", "base_url", "model", "api_key", "voice"}
_CREDENTIAL = re.compile(r"KEY|SECRET|TOKEN|PASSWORD", re.IGNORECASE)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True, kw_only=True)
class SettingsOptions:
    token: str
    env_file: Path
    scan_hosts: tuple[str, ...] = ("localhost",)
    """Hosts whose usual ports the server scan looks at (none: only the URLs)."""
    scan_urls: tuple[str, ...] = ()
    scan_timeout: float = 1.5
    probe_timeout: float = 8.0


class BadChange(Exception):
    """A change that cannot be made; the message is the one line to answer."""


# --- access -----------------------------------------------------------------------------


def _refuse(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers={**NO_STORE, **headers})


def same_origin() -> Middleware:
    """Middleware: an `/api/settings*` request sent from a page of another origin is
    refused (403), whatever it carries: a browser names that page in `Origin` and
    `Sec-Fetch-Site`. Scripts, which send neither, pass on to the token check.

    The origin's host and port are compared with the Host the request was sent to, not
    its scheme: behind a reverse proxy that ends TLS, the page is https and this server
    hears http."""

    @web.middleware
    async def check_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(API_PREFIX):
            origin = request.headers.get(hdrs.ORIGIN)
            site = request.headers.get("Sec-Fetch-Site")
            foreign = origin is not None and urlsplit(origin).netloc.lower() != (
                request.host.lower()
            )
            if foreign or site not in (None, "same-origin", "none"):
                return _refuse(403, "requests from another origin are refused")
        return await handler(request)

    return check_origin


def bearer_token(token: str) -> Middleware:
    """Middleware: `/api/settings*` needs `Authorization: Bearer <token>`."""
    expected = token.encode()

    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(API_PREFIX):
            scheme, _, given = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
            if scheme.lower() != "bearer" or not given.strip():
                return _refuse(
                    401,
                    "the settings need the access token that `voice-agent talk` printed "
                    "(Authorization: Bearer <token>)",
                    **{"WWW-Authenticate": "Bearer"},
                )
            if not hmac.compare_digest(given.strip().encode(), expected):
                return _refuse(403, "wrong access token")
        return await handler(request)

    return check_token


# --- a change ---------------------------------------------------------------------------


def parse_change(body: object) -> dict[Role, dict[str, str | None]]:
    """The roles and fields of a request body, or `BadChange` naming what is wrong."""
    if not isinstance(body, dict) or not body:
        raise BadChange("expected a JSON object naming the roles to change: llm, stt or tts")
    change: dict[Role, dict[str, str | None]] = {}
    for role, fields in body.items():
        if role == "livekit":
            raise BadChange(
                "livekit: not changed here (the worker reads it at start: set LIVEKIT_* in "
                ".env and restart it)"
            )
        if role not in ROLES:
            raise BadChange(f"{role}: unknown role (expected llm, stt or tts)")
        if not isinstance(fields, dict):
            raise BadChange(f"{role}: expected an object of fields")
        allowed = _FIELDS if role == "tts" else _FIELDS - {"voice"}
        for name, value in fields.items():
            if name not in allowed:
                raise BadChange(f"{role}.{name}: unknown field")
            if value is not None and not isinstance(value, str):
                raise BadChange(f"{role}.{name}: expected a string or null")
        change[role] = {k: (v.strip() if isinstance(v, str) else None) for k, v in fields.items()}
    return change


def _same(a: str | None, b: str | None) -> bool:
    return (a or "").rstrip("/") == (b or "").rstrip("/")


def variables(
    change: Mapping[Role, Mapping[str, str | None]], current: Mapping[str, str]
) -> dict[str, str]:
    """The `.env` variables `change` sets, given the `current` values (file and
    environment, upper-case names)."""
    values: dict[str, str] = {}
    for role, fields in change.items():
        prefix = role.upper()
        names = {
            "provider": f"{prefix}_PROVIDER",
            "base_url": f"{prefix}_BASE_URL",
            "model": f"{prefix}_MODEL",
            "api_key": f"{prefix}_API_KEY",
            "voice": "TTS_VOICE",
        }
        provider_now = current.get(names["provider"]) or str(
            Settings.model_fields[f"{role}_provider"].default
        )
        provider = fields.get("provider") or provider_now
        moved = provider.lower() != provider_now.lower() or (
            "base_url" in fields and not _same(fields["base_url"], current.get(names["base_url"]))
        )
        if moved:
            # another server: nothing of the old one carries over, its key least of all
            values.update(dict.fromkeys(owned_variables(role), ""))
        for name, value in fields.items():
            if name == "api_key" and value is None:
                continue  # null: keep the key
            values[names[name]] = value or ""
    return values


def _holds_credential(values: Mapping[str, str]) -> bool:
    return any(_CREDENTIAL.search(k) and v for k, v in values.items())


@dataclass(frozen=True, slots=True)
class Trial:
    config: Config
    overridden: list[str]
    """Variables of the change that the environment sets, and so wins over `.env`."""


def try_change(env_file: Path, values: Mapping[str, str]) -> Trial:
    """`values` written into a private copy of `env_file` by `setup`'s writer and loaded as
    the worker loads it; `ConfigError` with its one line if it does not pass."""
    with tempfile.TemporaryDirectory(prefix="voice-agent-settings-") as scratch:
        trial = Path(scratch) / ".env"
        if env_file.exists():
            trial.write_bytes(env_file.read_bytes())
        write_env_file(trial, values, private=True)
        back = env_file_values(trial)
        for name, value in values.items():
            if back.get(name, "") != value:
                # never the value itself: it may be a key
                raise ConfigError(f"{name}: cannot be written to .env to read back the same")
        config = load_file(trial)
        config.settings.environ()  # read the file's vendor keys while it is there
    return Trial(config=config, overridden=sorted(environment_names() & set(values)))


# --- the routes -------------------------------------------------------------------------


class SettingsApi:
    def __init__(self, opts: SettingsOptions) -> None:
        self._opts = opts
        self._writing = asyncio.Lock()

    def _json(self, body: object, status: int = 200) -> web.Response:
        return web.json_response(body, status=status, headers=NO_STORE)

    async def view(self, request: web.Request) -> web.Response:
        return self._json(
            await settings_view(self._opts.env_file, probe_timeout=self._opts.probe_timeout)
        )

    async def servers(self, request: web.Request) -> web.Response:
        try:
            config: Config | None = load_file(self._opts.env_file)
        except ConfigError:
            config = None
        urls = [*self._opts.scan_urls, *request.query.getall("url", [])]
        found = await scan(
            hosts=self._opts.scan_hosts,
            urls=[u for u in urls if u.strip()],
            config=config,
            request_timeout=self._opts.scan_timeout,
        )
        return self._json({"servers": found})

    async def _change(self, request: web.Request) -> tuple[dict[Role, Any], dict[str, str]]:
        try:
            body = await request.json()
        except ValueError:
            raise BadChange("expected a JSON body") from None
        change = parse_change(body)
        current = {k.upper(): v for k, v in file_and_environ(self._opts.env_file).items()}
        return change, variables(change, current)

    async def test(self, request: web.Request) -> web.Response:
        try:
            change, values = await self._change(request)
            trial = await asyncio.to_thread(try_change, self._opts.env_file, values)
        except (BadChange, ConfigError) as e:
            return self._json({"error": str(e)}, status=400)
        keys = [v for k, v in values.items() if _CREDENTIAL.search(k) and v]  # new ones
        states = await probe_roles(
            trial.config, list(change), request_timeout=self._opts.probe_timeout, secrets=keys
        )
        return self._json(
            {"results": {r: _state(s) for r, s in states.items()}, "overridden": trial.overridden}
        )

    async def save(self, request: web.Request) -> web.Response:
        env_file = self._opts.env_file
        async with self._writing:
            try:
                _, values = await self._change(request)
                trial = await asyncio.to_thread(try_change, env_file, values)
            except (BadChange, ConfigError) as e:
                return self._json({"error": str(e)}, status=400)
            # owner-only when the file will hold a key (this one, or one it had)
            private = _holds_credential(values) or _holds_credential(env_file_values(env_file))
            backup = await asyncio.to_thread(write_env_file, env_file, values, private=private)
            saved = {
                "env_file": str(env_file),
                "backup": backup.name if backup else None,
                "revision": revision_of(env_file),
                "overridden": trial.overridden,
            }
        view = await settings_view(env_file, probe_timeout=self._opts.probe_timeout)
        return self._json({**view, "saved": saved})


def _state(state: State) -> dict[str, object]:
    return {"ok": state.ok, "detail": state.detail}


def install(app: web.Application, opts: SettingsOptions) -> None:
    """Add the settings page, its API and their access checks to the talk server."""
    api = SettingsApi(opts)
    page = static_file("settings.html")
    asset = asset_handler("settings.js", "settings.css")

    async def settings_page(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", headers=NO_STORE)

    app.middlewares.append(same_origin())
    app.middlewares.append(bearer_token(opts.token))
    app.router.add_get("/settings", settings_page)
    app.router.add_get("/settings/{name}", asset)
    app.router.add_get(API_PREFIX, api.view)
    app.router.add_get(f"{API_PREFIX}/servers", api.servers)
    app.router.add_post(f"{API_PREFIX}/test", api.test)
    app.router.add_put(API_PREFIX, api.save)
