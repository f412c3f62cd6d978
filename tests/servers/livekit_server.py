"""The one LiveKit server API `voice-agent check` calls: RoomService.ListRooms over Twirp.

It verifies the request's token against the API key/secret pair like livekit-server
does, answering 401 (Twirp `unauthenticated`) for a wrong one.
"""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web
from livekit import api


class FakeLiveKitServer:
    def __init__(self, *, api_key: str = "devkey", api_secret: str = "secret") -> None:
        self._verifier = api.TokenVerifier(api_key, api_secret)
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeLiveKitServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/twirp/livekit.RoomService/ListRooms", self._list_rooms)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _list_rooms(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            self._verifier.verify(token)
        except Exception:
            return web.json_response(
                {"code": "unauthenticated", "msg": "invalid token"}, status=401
            )
        return web.Response(
            body=api.ListRoomsResponse().SerializeToString(), content_type="application/protobuf"
        )
