"""Request fields a server refuses, learnt at run time, and the retry without them.

vLLM without its tool flags and some llama.cpp builds answer `tools` or
`tool_choice="none"` with a 400; strict proxies refuse the thinking switch
(`chat_template_kwargs`, `think`). Asking again without the refused part answers the
user; doing it in the provider (not the engine) keeps a `FallbackAdapter` from taking
a refused request for a dead backend. What was refused is remembered, so the next
request leaves it out at once: tools only when the server's message says so, since a
context overflow (also a 400) is answered too once the schemas are gone. An overflow is
asked again with a shorter history instead, tools kept (`context_overflow`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from .base import APIStatusError
from .context_overflow import is_context_overflow, server_message, shorter

__all__ = ["Refusals"]

logger = logging.getLogger("providers")

Part = Literal["thinking", "tools"]
_REFUSED = (400, 422)
_MAX_TRIMS = 6
_TOOLS = re.compile(r"tool|function", re.I)
"""What a server that refuses tools says: vLLM's `"auto" tool choice requires
--enable-auto-tool-choice`, llama.cpp's `tools param requires --jinja flag`, Ollama's
`does not support tools`."""


class Refusals:
    def __init__(self, *, thinking_fields: Mapping[str, Any]) -> None:
        self._thinking_fields = thinking_fields
        self._tools = False
        self._tool_choice_none = False
        self._thinking = False

    def adapt(self, request: dict[str, Any]) -> dict[str, Any]:
        """`request` minus what this server was seen to refuse."""
        if self._thinking:
            request = self._without("thinking", request) or request
        if "tools" in request and (
            self._tools or (self._tool_choice_none and request.get("tool_choice") == "none")
        ):
            return self._without("tools", request) or request
        return request

    async def send(
        self,
        request: dict[str, Any],
        send_once: Callable[[dict[str, Any]], Awaitable[None]],
        *,
        may_retry: Callable[[], bool],
        backend: str,
    ) -> None:
        """`send_once(request)`, asked again while the server answers 400/422 and nothing
        was streamed yet: with a shorter history when the request overflowed the context
        (tools kept), else without each refusable part in turn."""
        request = self.adapt(request)
        parts: list[Part] = ["tools", "thinking"]
        trims = 0
        dropped: tuple[Part, dict[str, Any], APIStatusError] | None = None
        while True:
            try:
                await send_once(request)
            except APIStatusError as e:
                if e.status_code not in _REFUSED or not may_retry():
                    raise
                short = shorter(request) if is_context_overflow(e) else None
                if short is not None and trims < _MAX_TRIMS:
                    trims += 1
                    logger.warning(
                        "LLM context overflowed; sending a shorter history",
                        extra={"backend": backend, "status_code": e.status_code},
                    )
                    request = short
                    continue
                while parts and self._without(parts[0], request) is None:
                    parts.pop(0)
                if not parts:
                    raise
                part = parts.pop(0)
                plain = self._without(part, request)
                assert plain is not None
                logger.warning(
                    f"LLM server refused the request with {part}; sending it without",
                    extra={"backend": backend, "status_code": e.status_code},
                )
                dropped, request = (part, request, e), plain
                continue
            if dropped is not None:
                self._learn(*dropped, backend=backend)
            return

    def _learn(
        self, part: Part, request: dict[str, Any], error: APIStatusError, *, backend: str
    ) -> None:
        # the same request without `part` was answered. Thinking fields are a few bytes:
        # it was them. Tool schemas are large: a request that overflowed the context fits
        # without them too, so tools are only remembered as refused when the server said so
        if part == "thinking":
            self._thinking = True
        elif not _TOOLS.search(server_message(error)):
            logger.info(
                "LLM server answered without tools; not remembered (it did not say why)",
                extra={"backend": backend},
            )
        elif request.get("tool_choice") == "none":
            self._tool_choice_none = True
        else:
            self._tools = True

    def _without(self, part: Part, request: dict[str, Any]) -> dict[str, Any] | None:
        fields: Mapping[str, Any] | tuple[str, ...] = (
            self._thinking_fields
            if part == "thinking"
            else ("tools", "tool_choice", "parallel_tool_calls")
        )
        if part == "tools" and "tools" not in request:
            return None
        if not any(k in request for k in fields):
            return None
        return {k: v for k, v in request.items() if k not in fields}
