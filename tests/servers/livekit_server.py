"""The one LiveKit server API `voice-agent check` calls: RoomService.ListRooms over Twirp,
and a worker endpoint (`/agent`) that refuses every worker.

It verifies the request's token against the API key/secret pair like livekit-server
does, answering 401 (Twirp `unauthenticated`) for a wrong one.
"""

from __future__ import annotations

from aiohttp import web
from livekit import api

from .threaded import ThreadedServer


class FakeLiveKitServer(ThreadedServer):
    def __init__(self, *, api_key: str = "devkey", api_secret: str = "secret") -> None:
        super().__init__()
        self._verifier = api.TokenVerifier(api_key, api_secret)
        self.refused_workers = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/twirp/livekit.RoomService/ListRooms", self._list_rooms)
        app.router.add_get("/agent", self._agent)

    async def _agent(self, request: web.Request) -> web.Response:
        # the worker's connection: refused, as livekit-server refuses a worker whose
        # token it cannot verify (this fake never accepts a worker)
        self.refused_workers += 1
        return web.json_response({"code": "unauthenticated", "msg": "invalid token"}, status=401)

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
