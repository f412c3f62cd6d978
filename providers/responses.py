"""Read a chat-completions response by what it is, not by what was asked for.

Servers answer a streamed request with one JSON body (some proxies, some llama.cpp
builds when tools are involved) and a non-streamed one with SSE. The Content-Type
decides; a missing or wrong one is settled by the first bytes. Either way the caller
gets stream chunks (a JSON body becomes one chunk whose `delta` is the message), and
`ended` says whether the server said it was done (`data: [DONE]`, or a whole body):
that, not a `finish_reason` some servers never send, tells a complete response from
a cut one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2

__all__ = ["CompletionReader", "ServerReportedError"]


class ServerReportedError(Exception):
    """The server sent an `error` object instead of (or in the middle of) a completion."""

    def __init__(self, message: str, *, body: object = None) -> None:
        super().__init__(message)
        self.body = body
        """The server's `error` object (for classifying it; it may echo the request)."""


class CompletionReader:
    def __init__(self, response: httpx2.Response) -> None:
        self._response = response
        self.ended = False
        """The server said the response was complete."""

    async def chunks(self) -> AsyncIterator[dict[str, Any]]:
        content_type = self._response.headers.get("content-type", "").split(";")[0].strip()
        raw = self._response.aiter_bytes()
        first = b""
        async for data in raw:
            first += data
            if first.strip():
                break
        if _is_sse(content_type, first):
            async for chunk in self._events(first, raw):
                yield chunk
            return
        body = first + b"".join([data async for data in raw])
        yield _as_chunk(_json_object(body))
        self.ended = True

    async def _events(self, first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[Any]:
        buffer, data_lines = first, list[str]()

        async def more() -> AsyncIterator[bytes]:
            yield b""
            async for data in rest:
                yield data

        async for data in more():
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for raw_line in lines:
                line = raw_line.decode("utf-8", errors="replace").rstrip("\r")
                if line:
                    if line.startswith("data:"):
                        data_lines.append(line[5:].removeprefix(" "))
                    continue  # comments (`: keep-alive`), `event:`, `id:` carry nothing
                if data_lines:
                    chunk = self._event("\n".join(data_lines))
                    data_lines = []
                    if chunk is not None:
                        yield chunk
                if self.ended:
                    return
        tail = buffer.decode("utf-8", errors="replace").strip()
        if tail.startswith("data:"):
            data_lines.append(tail[5:].strip())
        if data_lines and (chunk := self._event("\n".join(data_lines))) is not None:
            yield chunk

    def _event(self, data: str) -> dict[str, Any] | None:
        if data.strip() == "[DONE]":
            self.ended = True
            return None
        chunk = _json_object(data.encode())
        _raise_reported_error(chunk)
        choices = chunk.get("choices") or []
        if any(isinstance(c, dict) and "message" in c for c in choices):
            return _as_chunk(chunk)  # a whole completion sent as one event
        return chunk


def _is_sse(content_type: str, first: bytes) -> bool:
    if content_type == "text/event-stream":
        return True
    if content_type.endswith("json"):
        return False
    head = first.lstrip()
    return head.startswith((b"data:", b":", b"event:"))


def _json_object(body: bytes) -> dict[str, Any]:
    value = json.loads(body.decode("utf-8", errors="replace"))
    if not isinstance(value, dict):
        raise ValueError("the LLM server sent JSON that is not an object")
    return value


def _raise_reported_error(body: dict[str, Any]) -> None:
    if body.get("error") and not body.get("choices"):
        raise ServerReportedError("the LLM server reported an error", body=body["error"])


def _as_chunk(body: dict[str, Any]) -> dict[str, Any]:
    """A whole completion as the one stream chunk that would have carried all of it."""
    _raise_reported_error(body)
    choices = [
        {
            "index": c.get("index", 0),
            "delta": c.get("message") or c.get("delta") or {},
            "finish_reason": c.get("finish_reason"),
        }
        for c in body.get("choices") or []
        if isinstance(c, dict)
    ]
    return {"id": body.get("id"), "choices": choices, "usage": body.get("usage")}
