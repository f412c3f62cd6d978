"""LiveKit's server side, as far as the tests need it.

- `FakeLiveKitServer`: the one API `voice-agent check` calls, RoomService.ListRooms over
  Twirp. It verifies the request's token against the API key/secret pair like
  livekit-server does, answering 401 (Twirp `unauthenticated`) for a wrong one.
- `FakeLiveKitAgentServer`: `/agent`, where workers register (health tests).

`LiveKitPeer` and `worker_messages` are what every LiveKit double here shares.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import WSMsgType, web
from livekit import api
from livekit.protocol import agent

from .threaded import HOST, ThreadedServer


class LiveKitPeer(ThreadedServer):
    """A LiveKit double: reached at `url` (what LIVEKIT_URL names); with `api_key` and
    `api_secret`, it checks a request's token as livekit-server does."""

    def __init__(self, *, api_key: str = "devkey", api_secret: str = "secret") -> None:
        super().__init__()
        self._verifier = api.TokenVerifier(api_key, api_secret)

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    def authorized(self, request: web.Request) -> bool:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            self._verifier.verify(token)
        except Exception:
            return False
        return True

    async def list_rooms(self, request: web.Request) -> web.Response:
        """RoomService.ListRooms over Twirp: no rooms, for a request with a valid token."""
        if not self.authorized(request):
            return web.json_response(
                {"code": "unauthenticated", "msg": "invalid token"}, status=401
            )
        return web.Response(
            body=api.ListRoomsResponse().SerializeToString(), content_type="application/protobuf"
        )


async def worker_messages(ws: web.WebSocketResponse) -> AsyncIterator[agent.WorkerMessage]:
    """What a worker sends on `/agent`: one protobuf `WorkerMessage` a binary frame."""
    async for frame in ws:
        if frame.type == WSMsgType.BINARY:
            yield agent.WorkerMessage.FromString(frame.data)


def registered(worker_id: str) -> bytes:
    """The server's answer to a worker's `RegisterWorkerRequest`."""
    reply = agent.ServerMessage()
    reply.register.worker_id = worker_id
    reply.register.server_info.version = "test"
    return reply.SerializeToString()


LIST_ROOMS = "/twirp/livekit.RoomService/ListRooms"


class FakeLiveKitServer(LiveKitPeer):
    def routes(self, app: web.Application) -> None:
        app.router.add_post(LIST_ROOMS, self.list_rooms)


class FakeLiveKitAgentServer(LiveKitPeer):
    """The worker side of LiveKit: `/agent`, where a worker registers over a WebSocket.

    Accepts a worker's `RegisterWorkerRequest` (after checking its token), answers with a
    `RegisterWorkerResponse` and then keeps the connection open, as livekit-server does
    while no job comes. `drop()` closes every connection and refuses new ones until
    `accept()`: a LiveKit outage as the worker sees it.
    """

    def __init__(self, *, api_key: str = "devkey", api_secret: str = "secret") -> None:
        super().__init__(api_key=api_key, api_secret=api_secret)
        self._sockets: set[web.WebSocketResponse] = set()
        self.accepting = True
        self.registrations = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/agent", self._agent)

    async def _agent(self, request: web.Request) -> web.StreamResponse:
        if not self.accepting:
            return web.Response(status=503, text="unavailable")
        if not self.authorized(request):
            return web.Response(status=401, text="invalid token")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            async for message in worker_messages(ws):
                if message.HasField("register"):
                    self.registrations += 1
                    await ws.send_bytes(registered(f"AW_test{self.registrations}"))
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
