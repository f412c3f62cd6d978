"""`OpenAICompatibleProvider`: any server that speaks OpenAI's chat completions.

It is a livekit-agents `llm.LLM`, so an `AgentSession`, the framework's retries,
metrics and `FallbackAdapter` take it as they take their own plugins. What it adds
over livekit-plugins-openai is what self-hosted servers need: tool calls rebuilt
without trusting `index`/`finish_reason`, cut streams detected, quirk flags per
preset, and a non-streamed mode (`NOT_STREAMED`) for servers whose streamed tool
calls are broken.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx2
import openai
from livekit.agents import llm
from livekit.agents.llm import ToolChoice
from livekit.agents.llm import utils as llm_utils
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
)
from livekit.agents.utils import is_given
from openai import AsyncStream
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from .base import (
    APIConnectionError,
    APIError,
    APIStatusError,
    StreamCutError,
    ToolCall,
)
from .cooldown import Cooldown
from .errors import is_outage, to_api_error
from .presets import PLACEHOLDER_API_KEY, PRESETS, ProviderPreset
from .tool_calls import ToolCallAccumulator

__all__ = [
    "NOT_STREAMED",
    "ChatStream",
    "OpenAICompatibleProvider",
    "ProviderOptions",
    "normalize_base_url",
]

logger = logging.getLogger("providers")

_SCHEMA_CACHE_SIZE = 16

NOT_STREAMED: dict[str, Any] = {"stream": False}
"""`chat(extra_kwargs=NOT_STREAMED)`: one non-streamed request, delivered as a single chunk.

For servers whose streamed tool calls are broken. Being a `chat()` option rather than
another method, it works through anything that wraps an `llm.LLM` (`FallbackAdapter`).
"""


def normalize_base_url(url: str) -> str:
    """`http://host:11434/` -> `http://host:11434/v1`; a pasted `/chat/completions` is cut.

    A bare host gets OpenAI's `/v1` prefix, which every server in the list uses; a
    URL with a path is kept as the user wrote it, minus trailing slashes.
    """
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    for endpoint in ("/chat/completions", "/completions"):
        if path.endswith(endpoint):
            path = path[: -len(endpoint)]
    if not path:
        path = "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


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
        self._client = openai.AsyncClient(
            api_key=options.api_key or PLACEHOLDER_API_KEY,
            base_url=normalize_base_url(options.base_url),
            # livekit-agents' LLMStream owns retries: one policy, not two stacked
            max_retries=0,
            timeout=httpx2.Timeout(options.timeout),
            default_headers={**preset.headers, **options.extra_headers},
        )
        self._schema_cache: dict[tuple[llm.Tool, ...], list[dict[str, Any]]] = {}
        # learnt at run time (see ChatStream._attempt)
        self._refuses_tools = False
        self._refuses_tool_choice_none = False
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
        """What logs and livekit's `FallbackAdapter` name this backend by (never the key)."""
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

    def _adapted(self, request: dict[str, Any]) -> dict[str, Any]:
        """`request` minus what this server was seen to refuse."""
        if "tools" in request and (
            self._refuses_tools
            or (self._refuses_tool_choice_none and request.get("tool_choice") == "none")
        ):
            return _without_tools(request) or request
        return request

    def _learn_refusal(self, request: dict[str, Any]) -> None:
        # only called once the same request without tools was answered: it really was
        # the tools (or tool_choice) the server refused, and it will refuse them again
        if request.get("tool_choice") == "none":
            self._refuses_tool_choice_none = True
        else:
            self._refuses_tools = True

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
        request = self._provider._adapted(self._request)
        try:
            await self._request_once(request)
        except APIStatusError as e:
            # vLLM without its tool flags, and some llama.cpp builds, refuse `tools` or
            # `tool_choice="none"` with a 400. Asking again without them answers the user;
            # doing it here (not in the engine) keeps a FallbackAdapter from taking a
            # refused request for a dead backend.
            plain = _without_tools(request)
            if plain is None or e.status_code not in (400, 422) or self._event_ch.output_sent:
                raise
            logger.warning(
                "LLM server refused the request with tools; sending it without them",
                extra={"backend": self._provider.label, "status_code": e.status_code},
            )
            await self._request_once(plain)
            self._provider._learn_refusal(request)

    async def _request_once(self, request: dict[str, Any]) -> None:
        request = dict(request)
        streamed = request.pop("stream", True)
        try:
            if streamed:
                await self._run_streamed(request)
            else:
                await self._run_whole(request)
        except APIError:
            raise
        except Exception as e:
            # retrying after words were streamed would repeat them
            raise to_api_error(e, retryable=not self._event_ch.output_sent) from e

    async def _run_streamed(self, request: dict[str, Any]) -> None:
        quirks = self._provider._preset.quirks
        if quirks.stream_usage:
            request["stream_options"] = {"include_usage": True}
        finished = False
        calls = ToolCallAccumulator()
        thinking = llm_utils.ThinkingTokenFilter()
        chunk_id = ""
        stream = await self._post(request, stream=True)
        async with stream:
            async for chunk in stream:
                chunk_id = chunk.id or chunk_id
                for choice in chunk.choices or []:
                    finished = finished or choice.finish_reason is not None
                    if choice.delta is None:
                        continue
                    for tc in choice.delta.tool_calls or []:
                        calls.add_delta(tc)
                    text = llm_utils.strip_thinking_tokens(
                        choice.delta.content, thinking, final=choice.finish_reason is not None
                    )
                    if text:
                        self._send(chunk_id, text=text)
                if chunk.usage is not None:
                    self._send_usage(chunk_id, chunk.usage)
        if not finished and quirks.reports_finish_reason:
            raise StreamCutError(
                "the stream ended without a finish_reason",
                retryable=not self._event_ch.output_sent,
            )
        if calls:
            self._send(chunk_id, tool_calls=calls.finish())

    async def _run_whole(self, request: dict[str, Any]) -> None:
        """`extra_kwargs={"stream": False}`: one non-streamed completion, sent as one chunk."""
        response = await self._post(request, stream=False)
        if not isinstance(response, ChatCompletion) or not response.choices:
            raise APIConnectionError("the LLM server sent no completion choices")
        message = response.choices[0].message
        calls = ToolCallAccumulator()
        for tc in message.tool_calls or []:
            calls.add(
                id=tc.id,
                index=None,
                name=getattr(getattr(tc, "function", None), "name", None),
                arguments=getattr(getattr(tc, "function", None), "arguments", None),
            )
        text = llm_utils.strip_thinking_tokens(
            message.content, llm_utils.ThinkingTokenFilter(), final=True
        )
        self._send(response.id or "", text=text or None, tool_calls=calls.finish())
        if response.usage is not None:
            self._send_usage(response.id or "", response.usage)

    async def _post(self, request: dict[str, Any], *, stream: bool) -> Any:
        # `client.post` rather than `chat.completions.create`: the latter deep-copies the
        # whole history through the SDK's TypedDict transform on every request, which
        # costs milliseconds of CPU per turn and grows with the conversation. Our body
        # is plain JSON already; the SDK still does the HTTP, auth, errors and SSE.
        return await self._provider._client.post(
            "/chat/completions",
            body={**request, "stream": stream},
            cast_to=ChatCompletion,
            options={
                "timeout": httpx2.Timeout(self._conn_options.timeout),
                "security": {"bearer_auth": True},
            },
            stream=stream,
            stream_cls=AsyncStream[ChatCompletionChunk],
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

    def _send_usage(self, chunk_id: str, usage: CompletionUsage) -> None:
        self._event_ch.send_nowait(
            llm.ChatChunk(
                id=chunk_id,
                usage=llm.CompletionUsage(
                    completion_tokens=usage.completion_tokens or 0,
                    prompt_tokens=usage.prompt_tokens or 0,
                    total_tokens=usage.total_tokens or 0,
                ),
            )
        )


def _without_tools(request: dict[str, Any]) -> dict[str, Any] | None:
    if "tools" not in request:
        return None
    return {
        k: v for k, v in request.items() if k not in ("tools", "tool_choice", "parallel_tool_calls")
    }
