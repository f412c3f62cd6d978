"""`voice-agent talk` serves only the host names it is: a page on another site that
rebinds its name to 127.0.0.1 (DNS rebinding) is refused on every route, a malformed
Host is a 400, and the token it mints lasts minutes."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agent.commands.talk import TalkOptions, build_app

API_KEY = "talk-test-key"
API_SECRET = "talk-test-secret-that-is-long-enough-for-hs256"
OPTS = TalkOptions(livekit_url="ws://localhost:7880", api_key=API_KEY, api_secret=API_SECRET)


@asynccontextmanager
async def serving(opts: TalkOptions, app: web.Application | None = None) -> AsyncIterator[int]:
    server = TestServer(app or build_app(opts), host="127.0.0.1")
    await server.start_server()
    try:
        assert server.port is not None
        yield server.port
    finally:
        await server.close()


async def get(port: int, path: str, host: str | None) -> tuple[int, str]:
    """A raw HTTP/1.1 GET with exactly this Host line (None: none at all)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"GET {path} HTTP/1.1\r\n" + (f"Host: {host}\r\n" if host is not None else "")
    writer.write((head + "Connection: close\r\n\r\n").encode())
    await writer.drain()
    response = (await reader.read()).decode(errors="replace")
    writer.close()
    await writer.wait_closed()
    status = int(response.split(" ", 2)[1])
    return status, response.partition("\r\n\r\n")[2]


@pytest.mark.parametrize(
    "host", ["localhost:{port}", "127.0.0.1:{port}", "localhost", "LOCALHOST:{port}"]
)
async def test_the_names_this_server_is_get_a_token(host: str) -> None:
    async with serving(OPTS) as port:
        status, body = await get(port, "/api/token", host.format(port=port))
    assert status == 200
    assert '"token"' in body


async def test_a_rebound_name_gets_no_token_on_any_route() -> None:
    app = build_app(OPTS)

    async def settings_api(_: web.Request) -> web.Response:  # a route added later
        return web.Response(text="settings")

    app.router.add_get("/api/settings", settings_api)
    async with serving(OPTS, app) as port:
        for path in ("/api/token", "/", "/static/talk.js", "/api/settings", "/no-such-page"):
            status, body = await get(port, path, f"attacker.example:{port}")
            assert status == 403, path
            assert "token" not in body and "attacker" not in body
        # the same route, by a name the server serves
        assert (await get(port, "/api/settings", f"localhost:{port}"))[0] == 200


@pytest.mark.parametrize(
    "host",
    ["[zz", "[zz]:80", "localhost:99999", "localhost:0", "a b", "user@localhost", "", None],
    ids=["bracket", "bad-ipv6", "port-range", "port-zero", "space", "userinfo", "empty", "none"],
)
async def test_a_malformed_host_is_a_400(host: str | None) -> None:
    async with serving(OPTS) as port:
        status, body = await get(port, "/api/token", host)
    assert status == 400
    assert "token" not in body.lower().replace("malformed host", "")


async def test_configured_names_and_the_machines_name_when_listening_everywhere() -> None:
    configured = TalkOptions(
        livekit_url="ws://localhost:7880",
        api_key=API_KEY,
        api_secret=API_SECRET,
        allowed_hosts=("talk-lan.test",),
    )
    machine = socket.gethostname().lower()
    async with serving(configured) as port:
        assert (await get(port, "/api/token", f"talk-lan.test:{port}"))[0] == 200
        assert (await get(port, "/api/token", f"other.test:{port}"))[0] == 403
        if machine not in ("localhost", "127.0.0.1"):
            # listening on 127.0.0.1 only: the machine's name reaches another address
            assert (await get(port, "/api/token", f"{machine}:{port}"))[0] == 403
    everywhere = TalkOptions(
        livekit_url="ws://localhost:7880",
        api_key=API_KEY,
        api_secret=API_SECRET,
        bind_host="0.0.0.0",
    )
    async with serving(everywhere) as port:
        assert (await get(port, "/api/token", f"{machine}:{port}"))[0] == 200


async def test_a_token_lasts_minutes_enough_to_join() -> None:
    async with serving(OPTS) as port:
        status, body = await get(port, "/api/token", f"localhost:{port}")
    assert status == 200
    claims = jwt.decode(
        json.loads(body)["token"], API_SECRET, algorithms=["HS256"], options={"verify_aud": False}
    )
    lifetime = claims["exp"] - claims["nbf"]
    assert 120 <= lifetime <= 15 * 60
