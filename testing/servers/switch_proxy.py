"""A reverse proxy that can be switched off: a backend that goes down and comes back.

While `up`, every request is passed to `upstream` as it came; while down, it is
answered 503, as a load balancer in front of a restarting server does.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from .threaded import ThreadedServer

_HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection"}


class SwitchProxy(ThreadedServer):
    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = upstream.rstrip("/")
        """The upstream's origin (scheme://host:port)."""
        self.up = True
        self.refused = 0
        """Requests answered 503 while down."""

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{path:.*}", self._forward)

    async def _forward(self, request: web.Request) -> web.Response:
        if not self.up:
            self.refused += 1
            return web.json_response({"error": {"message": "service unavailable"}}, status=503)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with (
            aiohttp.ClientSession() as client,
            client.request(
                request.method,
                f"{self.upstream}{request.rel_url}",
                headers=headers,
                data=await request.read(),
            ) as resp,
        ):
            body = await resp.read()
            return web.Response(
                status=resp.status,
                body=body,
                content_type=resp.content_type,
            )
