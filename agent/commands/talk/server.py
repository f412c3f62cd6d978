"""`voice-agent talk`: the page and `GET /api/token`, served by aiohttp.

The token is minted here with the LiveKit key and secret (no cloud, no `lk` CLI): a
fresh room per connect, and, when `LIVEKIT_AGENT_NAME` is set, the agent's dispatch
to that room in the token's room configuration (LiveKit dispatches it on join). It
lasts minutes: enough to join (LiveKit keeps a joined participant's own token fresh).

Every request, to any route, first passes `only_served_hosts`: its Host must name this
server (the address it listens on, localhost, an IP address it was reached at, or a
name in TALK_ALLOWED_HOSTS). A page on another site that rebinds its own name to
127.0.0.1 (DNS rebinding) sends its own name as Host, and is refused; a Host that is
not a host name at all is a 400.
"""

from __future__ import annotations

import re
import secrets
import socket
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from ipaddress import ip_address
from urllib.parse import urlsplit, urlunsplit

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware
from livekit import api

from agent.commands.talk.static import NO_STORE, asset_handler, static_file
from agent.voice.room_events import EVENTS_TOPIC

TOKEN_TTL = timedelta(minutes=10)
"""Long enough to load the page and join; a token is fetched at each connect."""
_LOOPBACK_NAMES = {"localhost", "0.0.0.0", "::"}
_WILDCARDS = {"", "0.0.0.0", "::"}
_HOST_HEADER = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::[0-9]{1,5})?")


@dataclass(frozen=True, slots=True, kw_only=True)
class TalkOptions:
    livekit_url: str
    api_key: str
    api_secret: str
    agent_name: str = ""
    bind_host: str = "127.0.0.1"
    """The address the server listens on: a Host naming it is served."""
    allowed_hosts: tuple[str, ...] = ()
    """More names the page may be loaded by (TALK_ALLOWED_HOSTS, `--allow-host`)."""


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


def host_name(header: str) -> str | None:
    """The host a Host header names (`[::1]:8090` -> `::1`), lower-cased; None when the
    header is not `host[:port]`."""
    if not _HOST_HEADER.fullmatch(header):
        return None
    try:
        parts = urlsplit(f"//{header}")
        if parts.port == 0:
            return None
        if header.startswith("["):
            ip_address(parts.hostname or "")
    except ValueError:
        return None
    return parts.hostname.lower() if parts.hostname else None


def served_names(opts: TalkOptions) -> frozenset[str]:
    """The names a Host may give: localhost, the address listened on (this machine's
    name too when that is every interface), and the configured ones."""
    names = {"localhost", *(h.strip().lower() for h in opts.allowed_hosts if h.strip())}
    bind = opts.bind_host.strip("[]").lower()
    if bind in _WILDCARDS:
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    else:
        names.add(bind)
    return frozenset(names)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def only_served_hosts(opts: TalkOptions) -> Middleware:
    """Middleware: 400 for a malformed Host, 403 for a name this server does not serve."""
    names = served_names(opts)

    @web.middleware
    async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = host_name(request.headers.get(hdrs.HOST, ""))
        if host is None:
            return web.Response(status=400, text="Bad Request: malformed Host header")
        if host not in names and not _reached_at(host, request):
            return web.Response(
                status=403,
                text="Forbidden: this server does not serve that host name "
                "(voice-agent talk --allow-host NAME, or TALK_ALLOWED_HOSTS)",
            )
        return await handler(request)

    return check_host


def _reached_at(host: str, request: web.Request) -> bool:
    """A Host that is an IP address cannot be rebound: loopback, or the address this
    connection came in on, is this server."""
    try:
        ip = ip_address(host)
    except ValueError:
        return False
    if ip.is_loopback:
        return True
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname:
        return False
    local = ip_address(str(sockname[0]).split("%")[0])
    mapped = getattr(local, "ipv4_mapped", None)
    return ip in (local, mapped)


def build_app(opts: TalkOptions) -> web.Application:
    page = static_file("index.html").decode().replace("{{EVENTS_TOPIC}}", EVENTS_TOPIC)
    asset = asset_handler("talk.js", "talk.css")

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html", headers=NO_STORE)

    async def token(request: web.Request) -> web.Response:
        room = f"talk-{secrets.token_hex(4)}"
        identity = f"user-{secrets.token_hex(4)}"
        return web.json_response(
            {
                "url": url_for_browser(opts.livekit_url, request.host),
                "token": mint_token(opts, room=room, identity=identity),
                "room": room,
            },
            headers=NO_STORE,
        )

    # a middleware, so that every route (those added later too) is behind the Host check
    app = web.Application(middlewares=[only_served_hosts(opts)])
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", asset)
    app.router.add_get("/api/token", token)
    return app
