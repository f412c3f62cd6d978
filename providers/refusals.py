"""Request fields a server refuses, learnt at run time, and the retry without them.

vLLM without its tool flags and some llama.cpp builds answer `tools` or
`tool_choice="none"` with a 400; strict proxies refuse the thinking switch
(`chat_template_kwargs`, `think`). Asking again without the refused part answers the
user; doing it in the provider (not the engine) keeps a `FallbackAdapter` from taking
a refused request for a dead backend. What was refused is remembered, so the next
request leaves it out at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from .base import APIStatusError

__all__ = ["Refusals"]

logger = logging.getLogger("providers")

Part = Literal["thinking", "tools"]
_REFUSED = (400, 422)


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
        """`send_once(request)`, asked again without each refusable part in turn while
        the server answers 400/422 and nothing was streamed yet."""
        request = self.adapt(request)
        parts: list[Part] = ["tools", "thinking"]
        while True:
            try:
                await send_once(request)
                return
            except APIStatusError as e:
                if e.status_code not in _REFUSED or not may_retry():
                    raise
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
                try:
                    await send_once(plain)
                except APIStatusError as again:
                    if again.status_code not in _REFUSED or not may_retry():
                        raise
                    request = plain  # not (only) that part: try the next one too
                    continue
                self._learn(request, part)
                return

    def _learn(self, request: dict[str, Any], part: Part) -> None:
        # the same request without `part` was answered: it really was that part the
        # server refused, and it will refuse it again
        if part == "thinking":
            self._thinking = True
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
