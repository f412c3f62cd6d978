"""The livekit `Agent` whose `llm_node` is our turn engine, and its construction from settings."""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Callable, Sequence
from typing import Any

from livekit.agents import Agent, ModelSettings, llm

from providers import OpenAICompatibleProvider

from .config import Settings
from .history import HistoryLimits, bound_history, remove_filler
from .tools import McpTools, WebhookToolset, builtin_tools
from .turns import TurnEngine, TurnOptions


def build_llm(settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> llm.LLM[Any]:
    """The configured backend, or a livekit `FallbackAdapter` over the primary and
    `LLM_FALLBACKS`: a turn that fails before any word was said moves to the next.
    `clock` times the backends' cool-downs (tests pass their own)."""
    providers = [
        OpenAICompatibleProvider(options=options, preset=preset, clock=clock)
        for preset, options in settings.backends()
    ]
    if len(providers) == 1:
        return providers[0]
    cooldowns = [p.cooldown for p in providers if p.cooldown is not None]
    for cooldown in cooldowns:
        cooldown.peers = cooldowns
    return _Fallbacks(
        list[llm.LLM[Any]](providers),
        attempt_timeout=settings.llm_timeout,
        max_retry_per_llm=settings.llm_max_retries,
        retry_interval=0.5,
    )


class _Fallbacks(llm.FallbackAdapter):
    """livekit's adapter, closing the backends it was given when it is closed."""

    async def aclose(self) -> None:
        await super().aclose()
        for instance in self._llm_instances:
            await instance.aclose()


def build_engine(settings: Settings, llm_provider: llm.LLM[Any] | None = None) -> TurnEngine:
    return TurnEngine(
        llm_provider or build_llm(settings),
        TurnOptions(
            apology=settings.agent_apology,
            fallback_reply=settings.agent_fallback_reply,
            tool_pass=settings.tool_pass_mode,
            max_tool_rounds=settings.max_tool_rounds,
            tool_timeout=settings.tool_timeout,
            filler=settings.tool_filler.strip(),
            filler_delay=settings.tool_filler_delay,
        ),
    )


def build_tools(settings: Settings) -> list[llm.Tool | llm.Toolset]:
    """Built-in tools, webhook tools and MCP servers; toolsets connect in `setup()`."""
    tools: list[llm.Tool | llm.Toolset] = [*builtin_tools(enabled=settings.builtin_tools)]
    if settings.webhooks:
        tools.append(
            WebhookToolset(settings.webhooks, max_result_chars=settings.tool_result_max_chars)
        )
    if settings.mcp_servers:
        tools.append(
            McpTools(
                settings.mcp_servers,
                # MCP tools yield their name to ours; theirs get a server prefix
                reserved_names=llm.ToolContext(tools).function_tools.keys(),
                connect_timeout=settings.mcp_connect_timeout,
                # a little over the engine's timeout, so that the engine's fires first
                call_timeout=settings.tool_timeout + 5,
                max_result_chars=settings.tool_result_max_chars,
            )
        )
    return tools


def build_history_limits(settings: Settings) -> HistoryLimits:
    return HistoryLimits(
        max_turns=settings.history_max_turns,
        max_tool_result_chars=settings.history_tool_result_max_chars,
    )


class Assistant(Agent):
    """A livekit Agent that answers every user turn through the `TurnEngine`."""

    def __init__(
        self,
        *,
        engine: TurnEngine,
        instructions: str,
        tools: Sequence[llm.Tool | llm.Toolset] = (),
        history: HistoryLimits | None = None,
    ) -> None:
        super().__init__(instructions=instructions, tools=list(tools), llm=engine.provider)
        self._engine = engine
        self._limits = history or HistoryLimits()
        self._filler_to_remove: str | None = None

    @property
    def engine(self) -> TurnEngine:
        return self._engine

    async def llm_node(
        self,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool],
        model_settings: ModelSettings,
    ) -> AsyncIterable[str]:
        # the framework recorded last turn's filler as part of the assistant's message:
        # it was said, but the model did not say it
        filler, self._filler_to_remove = self._filler_to_remove, None
        if filler:
            remove_filler(chat_ctx, filler)
        turn = self._engine.run(bound_history(chat_ctx, self._limits), tools)
        try:
            async for text in turn:
                yield text
        finally:
            # also when interrupted: a filler that was said must not stay the model's words
            self._filler_to_remove = turn.filler
        # the framework records what was said; tool calls and results are ours to keep.
        # Its message is stamped with the reply's start; ours go right after the user's
        # message, so the next request reads: user, tool call, tool result, answer
        after = next(
            (i.created_at for i in reversed(chat_ctx.items) if _is_user_message(i)),
            turn.started_at,
        )
        for n, item in enumerate(turn.new_items, start=1):
            item.created_at = after + n * 1e-6
        history = self.chat_ctx.copy()
        if filler:
            remove_filler(history, filler)
        history.insert(turn.new_items)
        await self.update_chat_ctx(bound_history(history, self._limits))


def _is_user_message(item: llm.ChatItem) -> bool:
    return isinstance(item, llm.ChatMessage) and item.role == "user"
