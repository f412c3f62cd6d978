"""`OpenAICompatibleProvider`: any server that speaks OpenAI's chat completions.

It is a livekit-agents `llm.LLM`, so an `AgentSession`, the framework's retries,
metrics and `FallbackAdapter` take it as they take their own plugins. What it adds
over livekit-plugins-openai is what self-hosted servers need: tool calls rebuilt
without trusting `index`/`finish_reason`, cut streams detected, quirk flags per
preset, and a non-streamed mode (`NOT_STREAMED`) for servers whose streamed tool
calls are broken. Responses are read by their Content-Type (`responses`), reasoning is
kept out of the reply (`reasoning`), and thinking is switched off where the server has a
switch unless `ProviderOptions.thinking` asks for it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
from livekit.agents import llm
from livekit.agents.llm import ToolChoice
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
)
from livekit.agents.utils import is_given

from .base import (
    APIError,
    StreamCutError,
    ToolCall,
)
from .cooldown import Cooldown
from .errors import is_outage, to_api_error
from .presets import PLACEHOLDER_API_KEY, PRESETS, THINKS_IN_TEXT_MODELS, ProviderPreset
from .reasoning import ReasoningFilter, ThoughtHabit
from .refusals import Refusals
from .responses import CompletionReader
from .tool_calls import ToolCallAccumulator
from .urls import normalize_base_url, split_userinfo

__all__ = [
    "NOT_STREAMED",
    "ChatStream",
    "OpenAICompatibleProvider",
    "ProviderOptions",
    "normalize_base_url",
    "split_userinfo",
]

logger = logging.getLogger("providers")

_SCHEMA_CACHE_SIZE = 16
_REASONING_FIELDS = frozenset(("reasoning_content", "reasoning"))

NOT_STREAMED: dict[str, Any] = {"stream": False}
"""`chat(extra_kwargs=NOT_STREAMED)`: one non-streamed request, delivered as a single chunk.

For servers whose streamed tool calls are broken. Being a `chat()` option rather than
another method, it works through anything that wraps an `llm.LLM` (`FallbackAdapter`).
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderOptions:
    model: str
    base_url: str
    api_key: str = field(default=PLACEHOLDER_API_KEY, repr=False)
    timeout: float = 30.0
    """Seconds for connect, first byte and each gap between chunks."""
    temperature: float | None = None
    max_retries: int = 1
    """Attempts after the first, only while nothing has been streamed yet."""
    retry_interval: float = 0.5
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    cooldown_seconds: float = 0.0
    """After `cooldown_after` failures in a row, skip this backend for this long (0: never).
    Meant for fallback chains: a lone backend is always worth another try."""
    cooldown_after: int = 2
    thinking: bool = False
    """Let reasoning models think (slower first word). Off: the preset's switch turns it
    off where the server has one; what a model thinks anyway is never spoken."""
    thought_hold_chars: int = 32
    """Characters held at the start of a reply from a backend not known to think, in case
    a bare `</think>` closes a thought within them (0: none held). Held until one reply's
    start was a reply: then the backend is known to answer plainly."""

    @property
    def conn_options(self) -> APIConnectOptions:
        return APIConnectOptions(
            max_retry=self.max_retries, retry_interval=self.retry_interval, timeout=self.timeout
        )


class OpenAICompatibleProvider(llm.LLM):  # type: ignore[type-arg]
    def __init__(
        self,
        *,
        options: ProviderOptions,
        preset: ProviderPreset = PRESETS["openai-compatible"],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock`: what the cool-down measures its period with (tests pass their own)."""
        super().__init__()
        self._opts = options
        self._preset = preset
        # userinfo never stays in the URL (which labels and logs carry); it is sent as
        # Basic credentials, unless an API key is set: then the key is sent (Bearer)
        base_url, userinfo = split_userinfo(normalize_base_url(options.base_url))
        key = options.api_key or PLACEHOLDER_API_KEY
        headers = {**preset.headers, **options.extra_headers}
        if userinfo is not None and key == PLACEHOLDER_API_KEY:
            token = base64.b64encode(":".join(userinfo).encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        elif userinfo is not None:
            logger.warning(
                "the LLM base URL carries a user and password, and an API key is set: "
                "sending the API key (Bearer), not the URL's credentials",
                extra={"base_url": base_url},
            )
        self._headers = {"Authorization": f"Bearer {key}", **headers}
        self._client = openai.AsyncClient(
            api_key=options.api_key or PLACEHOLDER_API_KEY,
            base_url=base_url,
            # livekit-agents' LLMStream owns retries: one policy, not two stacked
            max_retries=0,
            timeout=httpx2.Timeout(options.timeout),
            default_headers=headers,
        )
        self._schema_cache: dict[tuple[llm.Tool, ...], list[dict[str, Any]]] = {}
        # learnt at run time (see ChatStream._attempt)
        self._refusals = Refusals(thinking_fields=self._thinking_fields())
        # learnt reply by reply: whether its thoughts come in plain text, closed by a bare
        # `</think>` (then held until the tag), or its replies start plainly (held no more)
        self._thought_habit = ThoughtHabit(
            in_text=options.thinking
            or preset.quirks.thinks_in_text
            or any(family in options.model.lower() for family in THINKS_IN_TEXT_MODELS)
        )
        self._cooldown = (
            Cooldown(
                seconds=options.cooldown_seconds, threshold=options.cooldown_after, clock=clock
            )
            if options.cooldown_seconds > 0
            else None
        )

    def __repr__(self) -> str:
        # never the key
        return (
            f"OpenAICompatibleProvider(provider={self.provider!r}, model={self.model!r}, "
            f"base_url={self.base_url!r})"
        )

    @property
    def label(self) -> str:
        """What logs and livekit's `FallbackAdapter` name this backend by (never the key,
        never the URL's userinfo)."""
        return f"{self._preset.name}:{self._opts.model}@{self.base_url}"

    @property
    def model(self) -> str:
        return self._opts.model

    @property
    def provider(self) -> str:
        return self._preset.name

    @property
    def base_url(self) -> str:
        return str(self._client.base_url).rstrip("/")

    @property
    def headers(self) -> dict[str, str]:
        """What every request carries, credentials included (for probes: never log it)."""
        return dict(self._headers)

    @property
    def options(self) -> ProviderOptions:
        return self._opts

    @property
    def preset(self) -> ProviderPreset:
        return self._preset

    @property
    def cooldown(self) -> Cooldown | None:
        return self._cooldown

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> ChatStream:
        """A streamed completion. Text arrives as it is generated; tool calls, whole,
        in one chunk at the end of the stream."""
        if conn_options is DEFAULT_API_CONNECT_OPTIONS:
            conn_options = self._opts.conn_options
        request = self._request(
            chat_ctx, tools or [], tool_choice, parallel_tool_calls, extra_kwargs
        )
        return ChatStream(
            self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options, request=request
        )

    def _thinking_fields(self) -> Mapping[str, Any]:
        quirks = self._preset.quirks
        return quirks.thinking_on if self._opts.thinking else quirks.thinking_off

    def _tool_schemas(self, tools: list[llm.Tool]) -> list[dict[str, Any]]:
        """Schemas for `tools`, built once per tool list (1-2 ms a pass otherwise).

        Keyed by the tool objects themselves: holding them keeps their ids from
        being reused, and a session's tool list changes rarely (an MCP server joins).
        """
        key = tuple(tools)
        schemas = self._schema_cache.pop(key, None)
        if schemas is None:
            schemas = llm.ToolContext(tools).parse_function_tools(
                "openai", strict=self._preset.quirks.strict_tool_schema
            )
        self._schema_cache[key] = schemas  # most recently used last
        while len(self._schema_cache) > _SCHEMA_CACHE_SIZE:
            del self._schema_cache[next(iter(self._schema_cache))]
        return schemas

    async def aclose(self) -> None:
        await self._client.close()

    def _request(
        self,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool],
        tool_choice: NotGivenOr[ToolChoice],
        parallel_tool_calls: NotGivenOr[bool],
        extra_kwargs: NotGivenOr[dict[str, Any]],
    ) -> dict[str, Any]:
        messages, _ = chat_ctx.to_provider_format("openai")
        request: dict[str, Any] = {"model": self._opts.model, "messages": messages}
        if self._opts.temperature is not None:
            request["temperature"] = self._opts.temperature
        if tools:
            request["tools"] = self._tool_schemas(tools)
            if is_given(tool_choice):
                request["tool_choice"] = tool_choice
            if is_given(parallel_tool_calls):
                request["parallel_tool_calls"] = parallel_tool_calls
        request.update(self._thinking_fields())
        if is_given(extra_kwargs):
            request.update(extra_kwargs)
        return request


class ChatStream(llm.LLMStream):
    def __init__(
        self,
        provider: OpenAICompatibleProvider,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool],
        conn_options: APIConnectOptions,
        request: dict[str, Any],
    ) -> None:
        super().__init__(provider, chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)
        self._provider = provider
        self._request = request

    async def _run(self) -> None:
        cooldown = self._provider._cooldown
        if cooldown is not None:
            cooldown.check()
        try:
            await self._attempt()
        except APIError as e:
            if cooldown is not None and is_outage(e) and cooldown.record_failure():
                logger.warning(
                    "LLM backend failing repeatedly; skipping it for a while",
                    extra={"backend": self._provider.label, "cooldown_s": cooldown.seconds},
                )
            raise
        if cooldown is not None:
            cooldown.record_success()

    async def _attempt(self) -> None:
        await self._provider._refusals.send(
            self._request,
            self._request_once,
            may_retry=lambda: not self._event_ch.output_sent,
            backend=self._provider.label,
        )

    async def _request_once(self, request: dict[str, Any]) -> None:
        request = dict(request)
        streamed = request.pop("stream", True)
        try:
            await self._read(request, streamed=streamed)
        except APIError:
            raise
        except Exception as e:
            # retrying after words were streamed would repeat them
            raise to_api_error(e, retryable=not self._event_ch.output_sent) from e

    async def _read(self, request: dict[str, Any], *, streamed: bool) -> None:
        """One request; whatever the server answers with (SSE or one JSON body), text goes
        out as it arrives and tool calls, whole, in one chunk at the end."""
        provider = self._provider
        if streamed and provider._preset.quirks.stream_usage:
            request["stream_options"] = {"include_usage": True}
        calls = ToolCallAccumulator()
        reasoning = provider._thought_habit.reasoning_filter(provider._opts.thought_hold_chars)
        finished, chunk_id = False, ""
        try:
            # LLM_TIMEOUT bounds each read, and also the wait for the first output: SSE
            # keep-alive comments and reasoning deltas must not keep a turn silent forever
            async with asyncio.timeout(self._conn_options.timeout) as first_output:
                response = await self._post(request, stream=streamed)
                try:
                    reader = CompletionReader(response)
                    async for chunk in reader.chunks():
                        chunk_id = chunk.get("id") or chunk_id
                        if self._take(chunk, chunk_id, calls, reasoning, first_output):
                            finished = True
                finally:
                    await response.aclose()
        except Exception:
            self._send(chunk_id, text=reasoning.abandon() or None)  # see below
            raise
        provider._thought_habit.learn(reasoning)
        offered = llm.ToolContext(self._tools).function_tools.keys()
        for call in reasoning.harmony_calls:
            if call.name in offered:
                calls.add(id=None, index=None, name=call.name, arguments=call.arguments)
        # a server that said it was done ([DONE]) after complete output is believed
        # even without a finish_reason; a stream that just stops was cut
        complete = finished or (reader.ended and calls.complete())
        if not complete and provider._preset.quirks.reports_finish_reason:
            # the reply streamed before a failure is said (held start too, never a thought):
            # the same words every time, whatever the hold, the cuts or the timing
            self._send(chunk_id, text=reasoning.abandon() or None)
            raise StreamCutError(
                "the stream ended without a finish_reason",
                retryable=not self._event_ch.output_sent,
            )
        self._send(chunk_id, text=reasoning.finish() or None, tool_calls=calls.finish())

    def _take(
        self,
        chunk: dict[str, Any],
        chunk_id: str,
        calls: ToolCallAccumulator,
        reasoning: ReasoningFilter,
        first_output: asyncio.Timeout,
    ) -> bool:
        """Send on what one chunk says; True if it says the response is finished."""
        finished = False
        for choice in chunk.get("choices") or []:
            if choice.get("index") not in (0, None):
                continue
            finished = finished or choice.get("finish_reason") is not None
            delta = choice.get("delta") or {}
            for tc in delta.get("tool_calls") or []:
                calls.add_delta(tc)
                first_output.reschedule(None)
            # a reasoning parser: content is the reply, held no more (a long one would
            # otherwise be silent to its end, and time out)
            thought_apart = any(delta.get(f) for f in _REASONING_FIELDS)
            if thought_apart and (text := reasoning.thoughts_apart()):
                first_output.reschedule(None)
                self._send(chunk_id, text=text)
            if text := reasoning.push(_content_text(delta.get("content"))):
                first_output.reschedule(None)
                self._send(chunk_id, text=text)
        if isinstance(chunk.get("usage"), dict):
            self._send_usage(chunk_id, chunk["usage"])
        return finished

    async def _post(self, request: dict[str, Any], *, stream: bool) -> httpx2.Response:
        # `client.post` rather than `chat.completions.create`: the latter deep-copies the
        # whole history through the SDK's TypedDict transform on every request, which
        # costs milliseconds of CPU per turn and grows with the conversation. Our body
        # is plain JSON already; the SDK still does the HTTP, auth and status errors.
        # The raw-response header (the SDK's `with_streaming_response`) hands back the
        # unread response: `CompletionReader` reads it by its Content-Type.
        return await self._provider._client.post(
            "/chat/completions",
            body={**request, "stream": stream},
            cast_to=httpx2.Response,
            options={
                "timeout": httpx2.Timeout(self._conn_options.timeout),
                "security": {"bearer_auth": True},
                "headers": {"X-Stainless-Raw-Response": "stream"},
            },
        )

    def _send(
        self, chunk_id: str, *, text: str | None = None, tool_calls: list[ToolCall] | None = None
    ) -> None:
        if text or tool_calls:
            self._event_ch.send_nowait(
                llm.ChatChunk(
                    id=chunk_id,
                    delta=llm.ChoiceDelta(
                        role="assistant", content=text, tool_calls=tool_calls or []
                    ),
                )
            )

    def _send_usage(self, chunk_id: str, usage: dict[str, Any]) -> None:
        def count(key: str) -> int:
            value = usage.get(key)
            return value if isinstance(value, int) else 0

        self._event_ch.send_nowait(
            llm.ChatChunk(
                id=chunk_id,
                usage=llm.CompletionUsage(
                    completion_tokens=count("completion_tokens"),
                    prompt_tokens=count("prompt_tokens"),
                    total_tokens=count("total_tokens"),
                ),
            )
        )


def _content_text(content: Any) -> str:
    """A delta's `content`: a string, or (Mistral) a list of parts with `text`."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p if isinstance(p, str) else str(p.get("text") or "")
            for p in content
            if isinstance(p, str | dict)
        )
    return ""
