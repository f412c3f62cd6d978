"""The livekit `Agent` whose `llm_node` is our turn engine, and its construction from settings."""

from __future__ import annotations

from collections.abc import AsyncIterable, Sequence
from typing import Any

from livekit.agents import Agent, ModelSettings, llm

from providers import OpenAICompatibleProvider

from .config import Settings
from .tools import builtin_tools
from .turns import TurnEngine, TurnOptions


def build_llm(settings: Settings) -> llm.LLM[Any]:
    """The configured backend, or a livekit `FallbackAdapter` over the primary and
    `LLM_FALLBACKS`: a turn that fails before any word was said moves to the next."""
    providers: list[llm.LLM[Any]] = [
        OpenAICompatibleProvider(options=options, preset=preset)
        for preset, options in settings.backends()
    ]
    if len(providers) == 1:
        return providers[0]
    return _Fallbacks(
        providers,
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
        ),
    )


def build_tools(settings: Settings) -> list[llm.Tool | llm.Toolset]:
    return [*builtin_tools(enabled=settings.builtin_tools)]


class Assistant(Agent):
    """A livekit Agent that answers every user turn through the `TurnEngine`."""

    def __init__(
        self,
        *,
        engine: TurnEngine,
        instructions: str,
        tools: Sequence[llm.Tool | llm.Toolset] = (),
    ) -> None:
        super().__init__(instructions=instructions, tools=list(tools), llm=engine.provider)
        self._engine = engine

    async def llm_node(
        self,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool],
        model_settings: ModelSettings,
    ) -> AsyncIterable[str]:
        turn = self._engine.run(chat_ctx, tools)
        async for text in turn:
            yield text
        # the framework records what was said; tool calls and results are ours to keep
        if turn.new_items:
            history = self.chat_ctx.copy()
            history.insert(turn.new_items)
            await self.update_chat_ctx(history)
