"""A real MCP server (FastMCP) for the tests: over streamable HTTP or SSE on 127.0.0.1
in a thread of the test process, or over stdio as a child process
(`python testing/servers/mcp_server.py`).

Its tools: `get_forecast(city)`, `whoami()` (echoes the Authorization header it got,
so tests can see `${VAR}` expansion), `wait(seconds)` and `big_report()`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Literal

import uvicorn
from fastmcp import FastMCP
from fastmcp.server.dependencies import get_http_headers

SCRIPT = Path(__file__).resolve()


def build(name: str = "weather") -> FastMCP:
    mcp = FastMCP(name)

    @mcp.tool(annotations={"readOnlyHint": True})
    def get_forecast(city: str) -> str:
        """Tomorrow's weather forecast for a city."""
        return f"Sunny and 21 degrees in {city}."

    @mcp.tool
    def whoami() -> str:
        """Who the caller authenticated as."""
        return get_http_headers(include={"authorization"}).get("authorization", "anonymous")

    @mcp.tool
    async def wait(seconds: float) -> str:
        """Wait, then say so."""
        await asyncio.sleep(seconds)
        return f"Waited {seconds:g} seconds."

    @mcp.tool
    def big_report() -> str:
        """A very long report."""
        return "x" * 50_000

    return mcp


class McpHttpServer:
    """FastMCP over HTTP on 127.0.0.1, in its own thread and event loop."""

    def __init__(
        self,
        transport: Literal["http", "sse"] = "http",
        *,
        name: str = "weather",
        port: int = 0,
        json_response: bool = False,
    ) -> None:
        """`port`: 0 for a free one; an earlier server's port to restart it there.
        `json_response`: streamable HTTP answers each call with one JSON body, not SSE."""
        self.transport = transport
        self._mcp = build(name)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self.port: int = self._sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server = uvicorn.Server(
            uvicorn.Config(
                self._mcp.http_app(
                    transport=transport, json_response=json_response if json_response else None
                ),
                log_level="warning",
                timeout_graceful_shutdown=1,
            )
        )
        self._serving: concurrent.futures.Future[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{'mcp' if self.transport == 'http' else 'sse'}"

    def start(self) -> McpHttpServer:
        self._thread.start()
        self._serving = asyncio.run_coroutine_threadsafe(
            self._server.serve(sockets=[self._sock]), self._loop
        )
        _wait_until_listening(self.port)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._serving is not None:
            with contextlib.suppress(Exception):
                self._serving.result(timeout=10)
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_cancel_leftovers(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> McpHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _cancel_leftovers() -> None:
    # sse-starlette leaves a shutdown watcher per stream behind
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _wait_until_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"MCP test server did not listen on {port}")


if __name__ == "__main__":
    build(sys.argv[1] if len(sys.argv) > 1 else "weather").run(transport="stdio", show_banner=False)
