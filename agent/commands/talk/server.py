"""`voice-agent talk`: the page and `GET /api/token`, served by aiohttp.

The token is minted here with the LiveKit key and secret (no cloud, no `lk` CLI): a
fresh room per page load, and, when `LIVEKIT_AGENT_NAME` is set, the agent's dispatch
to that room in the token's room configuration (LiveKit dispatches it on join).
"""

from __future__ import annotations

import secrets
import warnings
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from ipaddress import ip_address
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web
from livekit import api

from agent.voice.room_events import EVENTS_TOPIC

TOKEN_TTL = timedelta(hours=6)
_LOOPBACK_NAMES = {"localhost", "0.0.0.0", "::"}


@dataclass(frozen=True, slots=True, kw_only=True)
class TalkOptions:
    livekit_url: str
    api_key: str
    api_secret: str
    agent_name: str = ""


def mint_token(opts: TalkOptions, *, room: str, identity: str) -> str:
    token = (
        api.AccessToken(opts.api_key, opts.api_secret)
        .with_identity(identity)
        .with_name("You")
        .with_ttl(TOKEN_TTL)
        .with_grants(
            api.VideoGrants(
                room_join=True,
                room=room,
                can_publish=True,
                can_subscribe=True,
                can_publish_data=True,
            )
        )
    )
    if opts.agent_name:
        # explicit dispatch: a worker with an agent name joins only the rooms it is sent to
        token = token.with_room_config(
            api.RoomConfiguration(agents=[api.RoomAgentDispatch(agent_name=opts.agent_name)])
        )
    with warnings.catch_warnings():
        # PyJWT warns about short HMAC keys: `livekit-server --dev`'s "secret" is one
        warnings.simplefilter("ignore")
        return token.to_jwt()


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def url_for_browser(livekit_url: str, page_host: str | None) -> str:
    """LIVEKIT_URL as the browser must dial it: `ws://localhost:7880` means this machine,
    which for a browser on another machine is the host it loaded the page from."""
    parts = urlsplit(livekit_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    host = parts.hostname or ""
    page = urlsplit(f"//{page_host}").hostname if page_host else None
    netloc = parts.netloc
    if is_loopback(host) and page and not is_loopback(page):
        shown = f"[{page}]" if ":" in page else page
        netloc = f"{shown}:{parts.port}" if parts.port else shown
    return urlunsplit((scheme, netloc, parts.path, parts.query, ""))


def _static(name: str) -> bytes:
    return (resources.files(__package__) / "static" / name).read_bytes()


def build_app(opts: TalkOptions) -> web.Application:
    page = _static("index.html").decode().replace("{{EVENTS_TOPIC}}", EVENTS_TOPIC)
    assets = {
        "talk.js": ("text/javascript", _static("talk.js")),
        "talk.css": ("text/css", _static("talk.css")),
    }

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html", headers=_NO_STORE)

    async def asset(request: web.Request) -> web.Response:
        found = assets.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        content_type, body = found
        return web.Response(body=body, content_type=content_type)

    async def token(request: web.Request) -> web.Response:
        room = f"talk-{secrets.token_hex(4)}"
        identity = f"user-{secrets.token_hex(4)}"
        return web.json_response(
            {
                "url": url_for_browser(opts.livekit_url, request.host),
                "token": mint_token(opts, room=room, identity=identity),
                "room": room,
            },
            headers=_NO_STORE,
        )

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", asset)
    app.router.add_get("/api/token", token)
    return app


_NO_STORE = {"Cache-Control": "no-store"}
