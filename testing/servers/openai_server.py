"""A scriptable OpenAI-compatible chat server on 127.0.0.1: real HTTP, real SSE.

Each request takes the next scripted `Reply` (or the default one). A reply is a
list of steps: text and tool-call deltas (split over chunks as real servers do),
pauses, and faults (HTTP errors, hangs, cut connections, garbage SSE). The same
script answers streamed and non-streamed requests. Runs in its own thread and
event loop, so sync tests, subprocess tests and async tests can all use it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from .threaded import ThreadedServer

# --- script steps ------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    text: str
    chunk_words: int = 1
    """Words per SSE chunk."""
    finish_reason: str | None = None
    """Put this `finish_reason` on every chunk (servers that misreport it)."""


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None
    splits: int = 3
    """Argument JSON is sent over this many chunks."""
    index: int | None = 0
    """What the server claims the index is (None: omitted, as some servers do)."""
    repeat_id: bool = False
    """Send id and name on every chunk, not just the first."""
    arguments_as_object: bool = False
    """Send the arguments as a JSON object in one delta, not as a string (some servers do)."""

    @property
    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass(frozen=True)
class Reasoning:
    """Reasoning sent in its own delta field, as servers with a reasoning parser do."""

    text: str
    field: str = "reasoning_content"
    """`reasoning_content` (vLLM, DeepSeek) or `reasoning` (OpenRouter, Ollama)."""


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Finish:
    reason: str | None = "stop"


@dataclass(frozen=True)
class Status:
    """Answer with this HTTP status and body instead of a completion."""

    code: int
    body: dict[str, Any] | str = field(
        default_factory=lambda: {"error": {"message": "scripted failure", "type": "server_error"}}
    )


@dataclass(frozen=True)
class Raw:
    """Bytes written as-is into the SSE stream (garbage, broken JSON, ...)."""

    data: bytes


@dataclass(frozen=True)
class Cut:
    """Drop the connection mid-response, once what was written before has gone out (an
    abort would discard what the transport still buffers: words lost or not by timing)."""


@dataclass(frozen=True)
class Hang:
    """Stop answering (until the client gives up)."""


Step = Text | ToolCall | Reasoning | Sleep | Finish | Status | Raw | Cut | Hang


@dataclass(frozen=True)
class Reply:
    steps: tuple[Step, ...]
    done: bool = True
    """Send `data: [DONE]` at the end."""
    token_delay: float = 0.0
    """Pause between content chunks."""
    body: Literal["asked", "json", "sse"] = "asked"
    """Answer as the request asked (`stream`), or with one JSON body / SSE regardless."""
    content_type: str | None = None
    """Override the Content-Type header (servers that label SSE `text/plain`)."""

    @staticmethod
    def of(
        *steps: Step,
        done: bool = True,
        token_delay: float = 0.0,
        body: Literal["asked", "json", "sse"] = "asked",
        content_type: str | None = None,
    ) -> Reply:
        return Reply(
            tuple(steps), done=done, token_delay=token_delay, body=body, content_type=content_type
        )


def keepalives(count: int, every: float, comment: bytes = b": OPENROUTER PROCESSING") -> list[Step]:
    """SSE comment lines every `every` seconds, as OpenRouter sends while a model is busy."""
    return [s for _ in range(count) for s in (Raw(comment + b"\n\n"), Sleep(every))]


def text_reply(text: str, *, ttft: float = 0.0, token_delay: float = 0.0) -> Reply:
    steps: list[Step] = [Sleep(ttft)] if ttft else []
    return Reply.of(*steps, Text(text), Finish("stop"), token_delay=token_delay)


def tool_reply(*calls: ToolCall, text: str = "", ttft: float = 0.0) -> Reply:
    steps: list[Step] = [Sleep(ttft)] if ttft else []
    if text:
        steps.append(Text(text))
    return Reply.of(*steps, *calls, Finish("tool_calls"))


# --- the server ---------------------------------------------------------------


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    body: dict[str, Any]
    received_at: float
    """perf_counter() when the request arrived."""
    first_token_at: float | None = None
    """perf_counter() when the reply's first content/tool chunk was written (streamed), or
    when the model would have produced its first token (non-streamed: after the leading
    pauses)."""
    finished_at: float | None = None
    """perf_counter() when the whole response had been written (non-streamed: built)."""
    disconnected_at: float | None = None
    """perf_counter() when a streamed reply saw the client hang up before its end."""

    @property
    def ttft(self) -> float | None:
        """The server's own time to first token for this request."""
        return None if self.first_token_at is None else self.first_token_at - self.received_at

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self.body.get("tools") or []]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])


class ScriptedLLMServer(ThreadedServer):
    def __init__(
        self,
        *,
        default: Reply | Callable[[dict[str, Any]], Reply] | None = None,
        model: str = "test-model",
        listed: tuple[str, ...] = (),
        record: bool = True,
    ) -> None:
        super().__init__()
        self.model = model
        self.listed = listed or (model,)
        """What `GET /v1/models` lists (default: `model`)."""
        self.record = record
        """Keep every request in `requests` (off for soaks: they would be the leak)."""
        self.default = default or text_reply("Default reply.")
        """Answers requests nothing was scripted for: a reply, or a function of the request body."""
        self.requests: list[Request] = []
        self.first_chunk_sent_at: list[float] = []
        """perf_counter() when each streamed reply's first content/tool chunk was written."""
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    # -- scripting
    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._replies.clear()
            self.requests.clear()
            self.first_chunk_sent_at.clear()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._replies)

    def _next(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self._replies:
                return self._replies.popleft()
        return self.default(body) if callable(self.default) else self.default

    # -- HTTP
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": m, "object": "model"} for m in self.listed]}
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        record = Request(
            request.path,
            {k.lower(): v for k, v in request.headers.items()},
            body,
            time.perf_counter(),
        )
        if self.record:
            self.requests.append(record)
        reply = self._next(body)
        steps = list(reply.steps)
        # leading pauses and an HTTP status happen before any response is sent
        pauses = 0.0
        while steps and isinstance(steps[0], Sleep):
            pauses += steps.pop(0).seconds  # type: ignore[union-attr]
        await asyncio.sleep(pauses)
        if steps and isinstance(steps[0], Status):
            status = steps[0]
            if isinstance(status.body, str):
                return web.Response(status=status.code, text=status.body)
            return web.json_response(status.body, status=status.code)
        if steps and isinstance(steps[0], Hang):
            await asyncio.sleep(3600)
        if reply.body == "sse" or (reply.body == "asked" and body.get("stream")):
            return await self._stream(request, record, reply, steps)
        return await self._whole(request, record, reply, steps)

    async def _stream(
        self, request: web.Request, record: Request, reply: Reply, steps: list[Step]
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": reply.content_type or "text/event-stream"}
        )
        cid = f"chatcmpl-{next(self._ids)}"
        first = True

        async def send(delta: dict[str, Any], finish: str | None = None) -> None:
            nonlocal first
            chunk = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
            if first and (delta.get("content") or delta.get("tool_calls")):
                first = False
                record.first_token_at = time.perf_counter()
                if self.record:
                    self.first_chunk_sent_at.append(record.first_token_at)

        try:
            await resp.prepare(request)  # the headers go now: a client gone since the wait
            await send({"role": "assistant", "content": ""})
            for step in steps:
                if isinstance(step, Sleep | Hang):
                    seconds = step.seconds if isinstance(step, Sleep) else 3600
                    if not await _pause(request, record, seconds):
                        return resp
                elif isinstance(step, Text):
                    for i, piece in enumerate(_word_chunks(step.text, step.chunk_words)):
                        if i and reply.token_delay:
                            await asyncio.sleep(reply.token_delay)
                        await send({"content": piece}, finish=step.finish_reason)
                elif isinstance(step, ToolCall):
                    for delta in _tool_call_deltas(step, next(self._ids)):
                        await send({"tool_calls": [delta]})
                elif isinstance(step, Reasoning):
                    for piece in _word_chunks(step.text, 1):
                        await send({step.field: piece})
                elif isinstance(step, Finish):
                    await send({}, finish=step.reason)
                elif isinstance(step, Raw):
                    await resp.write(step.data)
                elif isinstance(step, Cut):
                    assert request.transport is not None
                    request.transport.close()  # flushes what is buffered, then hangs up
                    return resp
            if reply.done:
                await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except ConnectionResetError:  # the client hung up mid-reply: a discarded attempt
            record.disconnected_at = time.perf_counter()
            return resp
        record.finished_at = time.perf_counter()
        return resp

    async def _whole(
        self, request: web.Request, record: Request, reply: Reply, steps: list[Step]
    ) -> web.StreamResponse:
        record.first_token_at = time.perf_counter()
        text = ""
        reasoning: dict[str, str] = {}
        calls: list[dict[str, Any]] = []
        finish: str | None = "stop"
        for step in steps:
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
            elif isinstance(step, Text):
                # a non-streamed reply still takes the model its generation time
                chunks = sum(1 for _ in _word_chunks(step.text, step.chunk_words))
                if reply.token_delay and chunks > 1:
                    await asyncio.sleep(reply.token_delay * (chunks - 1))
                text += step.text
            elif isinstance(step, ToolCall):
                arguments = step.arguments if step.arguments_as_object else step.arguments_json
                calls.append(
                    {
                        "id": step.id or f"call_{next(self._ids)}",
                        "type": "function",
                        "function": {"name": step.name, "arguments": arguments},
                    }
                )
            elif isinstance(step, Reasoning):
                reasoning[step.field] = reasoning.get(step.field, "") + step.text
            elif isinstance(step, Finish):
                finish = step.reason
            elif isinstance(step, Raw):
                return web.Response(status=200, body=step.data, content_type="application/json")
            elif isinstance(step, Cut):
                assert request.transport is not None
                request.transport.abort()
                return web.Response()
            elif isinstance(step, Hang):
                await asyncio.sleep(3600)
        message: dict[str, Any] = {"role": "assistant", "content": text or None, **reasoning}
        if calls:
            message["tool_calls"] = calls
        record.finished_at = time.perf_counter()
        body = _completion(f"chatcmpl-{next(self._ids)}", self.model, message, finish)
        return web.json_response(content_type=reply.content_type or "application/json", data=body)


def _completion(id: str, model: str, message: dict[str, Any], finish: str | None) -> dict[str, Any]:
    """A whole (non-streamed) chat completion with one choice."""
    return {
        "id": id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


async def _pause(request: web.Request, record: Request, seconds: float) -> bool:
    """Sleep, noticing a client that hangs up meanwhile (False: it did)."""
    deadline = time.perf_counter() + seconds
    while (left := deadline - time.perf_counter()) > 0:
        if request.transport is None or request.transport.is_closing():
            record.disconnected_at = time.perf_counter()
            return False
        await asyncio.sleep(min(left, 0.02))
    return True


def _word_chunks(text: str, words: int) -> Iterator[str]:
    parts = text.split(" ")
    for i in range(0, len(parts), words):
        piece = " ".join(parts[i : i + words])
        yield piece + (" " if i + words < len(parts) else "")


def _tool_call_deltas(call: ToolCall, n: int) -> Iterable[dict[str, Any]]:
    if call.arguments_as_object:
        function = {"name": call.name, "arguments": call.arguments}
        yield {
            "id": call.id or f"call_{n}",
            "type": "function",
            "index": call.index,
            "function": function,
        }
        return
    args = call.arguments_json
    size = max(1, -(-len(args) // max(1, call.splits)))
    pieces = [args[i : i + size] for i in range(0, len(args), size)] or [""]
    call_id = call.id or f"call_{n}"
    for i, piece in enumerate(pieces):
        delta: dict[str, Any] = {"function": {"arguments": piece}}
        if call.index is not None:
            delta["index"] = call.index
        if i == 0 or call.repeat_id:
            delta.update(id=call_id, type="function")
            delta["function"]["name"] = call.name
        yield delta
