"""LiveKit's server side, as far as the tests need it.

- `FakeLiveKitServer`: the one API `voice-agent check` calls, RoomService.ListRooms over
  Twirp. It verifies the request's token against the API key/secret pair like
  livekit-server does, answering 401 (Twirp `unauthenticated`) for a wrong one.
- `FakeLiveKitAgentServer`: `/agent`, where workers register (health tests).
"""

from __future__ import annotations

import asyncio

from aiohttp import WSMsgType, web
from livekit import api
from livekit.protocol import agent

from .threaded import ThreadedServer


class FakeLiveKitServer(ThreadedServer):
    def __init__(self, *, api_key: str = "devkey", api_secret: str = "secret") -> None:
        super().__init__()
        self._verifier = api.TokenVerifier(api_key, api_secret)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/twirp/livekit.RoomService/ListRooms", self._list_rooms)

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


class FakeLiveKitAgentServer(ThreadedServer):
    """The worker side of LiveKit: `/agent`, where a worker registers over a WebSocket.

    Accepts a worker's `RegisterWorkerRequest` (after checking its token), answers with a
    `RegisterWorkerResponse` and then keeps the connection open, as livekit-server does
    while no job comes. `drop()` closes every connection and refuses new ones until
    `accept()`: a LiveKit outage as the worker sees it.
    """

    def __init__(self, *, api_key: str = "devkey", api_secret: str = "secret") -> None:
        super().__init__()
        self._verifier = api.TokenVerifier(api_key, api_secret)
        self._sockets: set[web.WebSocketResponse] = set()
        self.accepting = True
        self.registrations = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/agent", self._agent)

    async def _agent(self, request: web.Request) -> web.StreamResponse:
        if not self.accepting:
            return web.Response(status=503, text="unavailable")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            self._verifier.verify(token)
        except Exception:
            return web.Response(status=401, text="invalid token")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY:
                    continue
                request_msg = agent.WorkerMessage()
                request_msg.ParseFromString(msg.data)
                if request_msg.HasField("register"):
                    self.registrations += 1
                    reply = agent.ServerMessage()
                    reply.register.worker_id = f"AW_test{self.registrations}"
                    await ws.send_bytes(reply.SerializeToString())
        finally:
            self._sockets.discard(ws)
        return ws

    def drop(self) -> None:
        """Close every worker connection and refuse new ones."""

        async def close_all() -> None:
            self.accepting = False
            for ws in list(self._sockets):
                await ws.close()

        asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(timeout=10)

    def accept(self) -> None:
        self.accepting = True
