"""Tool results as the model should see them: text, not too much of it, and no secrets.

A voice reply is a sentence or two; a 200 kB JSON dump costs latency and context
on every later request and the model speaks no better for it. And a tool's server is
not trusted with the process's memory: responses are read as a stream and cut at
`TOOL_RESPONSE_MAX_BYTES`, never read whole first.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2

CUT_MARK = " …[cut]"


class ResponseTooLarge(httpx2.StreamError):
    """A tool server's response went past the byte limit; what came after was not read."""


def clip(text: str, limit: int) -> str:
    """`text`, cut to at most `limit` characters with a visible mark when it was cut."""
    if limit <= 0 or len(text) <= limit:
        return text
    return text[: max(0, limit - len(CUT_MARK))].rstrip() + CUT_MARK


def as_text(value: Any) -> str:
    """A tool's result as text: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return str(value)


async def read_capped(resp: httpx2.Response, limit: int) -> tuple[bytes, bool]:
    """A streamed response's body, at most `limit` bytes of it; and whether it was cut
    (the rest is never read: the connection is closed with the response)."""
    body = bytearray()
    async for chunk in resp.aiter_bytes():
        body += chunk[: limit - len(body)]
        if len(body) >= limit:
            return bytes(body), True
    return bytes(body), False


class _CappedStream(httpx2.AsyncByteStream):
    """`inner`, failing past `limit` bytes: of the whole body, or of each event when it
    is an event stream (long-lived: its total has no bound, each message has)."""

    def __init__(
        self, inner: httpx2.AsyncByteStream, limit: int, *, events: bool, on_cut: Callable[[], None]
    ) -> None:
        self._inner = inner
        self._limit = limit
        self._events = events
        self._on_cut = on_cut

    async def __aiter__(self) -> AsyncIterator[bytes]:
        run, tail = 0, b""
        async for chunk in self._inner:
            run += len(chunk)
            if self._events:
                # an event ends at a blank line; the one that ended it may span two chunks
                seen = tail + chunk
                end = max((seen.rfind(sep) + len(sep) if sep in seen else 0) for sep in _EVENT_ENDS)
                if end:
                    run = len(seen) - end
                tail = seen[-3:]
            if run > self._limit:
                self._on_cut()
                raise ResponseTooLarge(f"the response is larger than {self._limit} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


_EVENT_ENDS = (b"\n\n", b"\r\r", b"\n\r\n")


class CappedTransport(httpx2.AsyncBaseTransport):
    """An HTTP transport whose responses fail with `ResponseTooLarge` past `limit` bytes
    (past `limit` bytes in one event, for an event stream); `on_cut` is told each time."""

    def __init__(
        self,
        limit: int,
        *,
        on_cut: Callable[[], None] = lambda: None,
        inner: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self._limit = limit
        self._on_cut = on_cut
        self._inner = inner or httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        resp = await self._inner.handle_async_request(request)
        assert isinstance(resp.stream, httpx2.AsyncByteStream)
        events = resp.headers.get("content-type", "").startswith("text/event-stream")
        resp.stream = _CappedStream(resp.stream, self._limit, events=events, on_cut=self._on_cut)
        return resp

    async def aclose(self) -> None:
        await self._inner.aclose()
