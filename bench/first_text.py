"""Sections 1 and 2: how long until the first words of a reply come out.

Each variant answers the same scripted turns from the same server, interleaved turn by
turn (the order rotates every repetition) so that a noisy neighbour slows all of them
alike. Two levels:

- "session": a real livekit `AgentSession` in text mode (no room, no audio), first
  words as they reach the session's text output. livekit's plain `Agent` (its default
  `llm_node` and tool loop) against our `Assistant` (the turn engine as `llm_node`).
- "llm_node": the node alone, no session: iterating `provider.chat()` the way livekit's
  default `llm_node` does, against iterating a `Turn`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import Agent, AgentSession, llm
from livekit.agents.llm import function_tool

from agent.config.settings import DEFAULT_INSTRUCTIONS
from agent.engine.turns import TurnEngine
from agent.tools import get_current_time
from agent.voice.assistant import Assistant

from .common import FirstTextOutput, bench_engine, bench_llm, chat_ctx, settle
from .server_proc import RemoteLLMServer, ServedRequest


@dataclass(slots=True)
class ToolClock:
    """When the benchmark's tool ran, so tool time can be taken out of a tool turn."""

    seconds: float = 0.05
    runs: list[tuple[float, float]] = field(default_factory=list)


TOOL_CLOCK = ToolClock()


@function_tool
async def lookup_order(order_id: int) -> str:
    """Look up an order's delivery date.

    Args:
        order_id: The order number.
    """
    started = time.perf_counter()
    await asyncio.sleep(TOOL_CLOCK.seconds)
    TOOL_CLOCK.runs.append((started, time.perf_counter()))
    return f"Order {order_id} ships tomorrow."


TOOLS: list[llm.Tool] = [get_current_time, lookup_order]
AGENT_TOOLS: list[llm.Tool | llm.Toolset] = [*TOOLS]


@dataclass(slots=True)
class Sample:
    """One turn: client-side first text out and what the server recorded."""

    started_at: float
    first_text_at: float
    served: list[ServedRequest]
    tool_run: tuple[float, float] | None = None


OURS_DEFAULT = "ours, streamed tool pass (default)"
BLOCKING = "ours, blocking tool pass (CAAL-style)"


class SessionVariant:
    """A text-mode `AgentSession` kept for the whole run; history reset after every turn."""

    def __init__(self, name: str, agent: Agent, provider: llm.LLM[Any]) -> None:
        self.name = name
        self._agent = agent
        self._provider = provider
        self._session: AgentSession[None] = AgentSession(llm=provider)
        self._out = FirstTextOutput()

    async def start(self) -> None:
        self._session.output.transcription = self._out
        await self._session.start(self._agent)

    async def turn(self, user_text: str) -> tuple[float, float]:
        self._out.first_at = None
        started = time.perf_counter()
        await self._session.run(user_input=user_text)
        if self._out.first_at is None:
            raise RuntimeError(f"{self.name}: the session said nothing")
        first = self._out.first_at
        # the same short history before every turn: request size stays constant
        await self._agent.update_chat_ctx(_history())
        return started, first

    async def aclose(self) -> None:
        await self._session.aclose()
        await self._provider.aclose()


class NodeVariant:
    """The llm_node alone: livekit's default (`provider.chat`) or a `Turn`."""

    def __init__(self, name: str, engine: TurnEngine, *, livekit_default: bool) -> None:
        self.name = name
        self._engine = engine
        self._livekit_default = livekit_default

    async def start(self) -> None:
        pass

    async def turn(self, user_text: str) -> tuple[float, float]:
        ctx = chat_ctx(user_text)
        first: float | None = None
        started = time.perf_counter()
        if self._livekit_default:
            # what `Agent.default.llm_node` does: stream the LLM's chunks as they come
            async with self._engine.llm.chat(chat_ctx=ctx, tools=TOOLS) as stream:
                async for chunk in stream:
                    if first is None and chunk.delta is not None and chunk.delta.content:
                        first = time.perf_counter()
        else:
            async for text in self._engine.run(ctx, TOOLS):
                if first is None and text.strip():
                    first = time.perf_counter()
        if first is None:
            raise RuntimeError(f"{self.name}: said nothing")
        return started, first

    async def aclose(self) -> None:
        await self._engine.llm.aclose()


Variant = SessionVariant | NodeVariant


def _history() -> llm.ChatContext:
    ctx = chat_ctx("unused")
    # the session adds the instructions itself; keep the earlier turns, drop system + user
    ctx.items = [i for i in ctx.items if getattr(i, "role", None) != "system"][:-1]
    return ctx


def session_variants(base_url: str) -> list[Variant]:
    """livekit's plain `Agent` against our `Assistant`, tool pass streamed and blocking."""
    plain = Agent(instructions=DEFAULT_INSTRUCTIONS, tools=AGENT_TOOLS)
    variants: list[Variant] = [
        SessionVariant("livekit Agent (default llm_node)", plain, bench_llm(base_url))
    ]
    for name, tool_pass in ((OURS_DEFAULT, "streamed"), (BLOCKING, "blocking")):
        engine = bench_engine(base_url, tool_pass=tool_pass)
        agent = Assistant(engine=engine, instructions=DEFAULT_INSTRUCTIONS, tools=TOOLS)
        variants.append(SessionVariant(name, agent, engine.llm))
    return variants


def node_variants(base_url: str) -> list[Variant]:
    """livekit's default `llm_node` (iterating `provider.chat`) against a `Turn`."""
    return [
        NodeVariant(
            "livekit default llm_node (provider.chat)", bench_engine(base_url), livekit_default=True
        ),
        NodeVariant(OURS_DEFAULT, bench_engine(base_url), livekit_default=False),
        NodeVariant(BLOCKING, bench_engine(base_url, tool_pass="blocking"), livekit_default=False),
    ]


async def collect(
    server: RemoteLLMServer,
    variants: list[Variant],
    script: Callable[[], list[object]],
    *,
    reps: int,
    warmup: int,
) -> dict[str, list[Sample]]:
    for v in variants:
        await v.start()
    samples: dict[str, list[Sample]] = {v.name: [] for v in variants}
    try:
        for rep in range(-warmup, reps):
            k = rep % len(variants)
            for v in variants[k:] + variants[:k]:  # rotate who goes first
                server.reset()
                server.script(*script())  # type: ignore[arg-type]
                TOOL_CLOCK.runs.clear()
                started, first = await v.turn(f"Question {rep} for {v.name}?")
                await settle()
                if rep >= 0:
                    run = TOOL_CLOCK.runs[0] if TOOL_CLOCK.runs else None
                    samples[v.name].append(Sample(started, first, server.requests(), run))
    finally:
        for v in variants:
            await v.aclose()
    return samples
