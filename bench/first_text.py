"""What the no-tool and tool sections share: the variants, and turns that time first words."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import Agent, AgentSession, llm
from livekit.agents.llm import function_tool

from agent.config.settings import DEFAULT_INSTRUCTIONS
from agent.engine.turns import TurnEngine
from agent.tools import get_current_time
from agent.voice.assistant import Assistant
from testing.servers.openai_server import Reply

from .common import FirstTextOutput, bench_engine, bench_llm, chat_ctx, interleaved, settle
from .server_proc import RemoteLLMServer, ServedRequest

OURS_DEFAULT = "ours, streamed tool pass (default)"
BLOCKING = "ours, blocking tool pass (CAAL-style)"


@dataclass(slots=True)
class ToolClock:
    """How long `lookup_order` takes, and when it ran (tool time comes out of a tool turn)."""

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


@dataclass(slots=True)
class Sample:
    """One turn: client-side first text out and what the server recorded."""

    started_at: float
    first_text_at: float
    served: list[ServedRequest]
    tool_run: tuple[float, float] | None = None


class SessionVariant:
    """A text-mode `AgentSession` kept for the whole run; history reset after every turn."""

    def __init__(self, name: str, agent: Agent, provider: llm.LLM[Any]) -> None:
        self.name, self._agent, self._provider = name, agent, provider
        self._session: AgentSession[None] = AgentSession(llm=provider)
        self._out = FirstTextOutput()

    async def start(self) -> None:
        self._session.output.transcription = self._out
        await self._session.start(self._agent)

    async def turn(self, user_text: str) -> tuple[float, float | None]:
        self._out.first_at = None
        started = time.perf_counter()
        await self._session.run(user_input=user_text)
        # the same short history before every turn: request size stays constant
        history = chat_ctx("unused")  # less the system prompt (the session adds it) and user
        history.items = [i for i in history.items if getattr(i, "role", None) != "system"][:-1]
        await self._agent.update_chat_ctx(history)
        return started, self._out.first_at

    async def aclose(self) -> None:
        await self._session.aclose()
        await self._provider.aclose()


class NodeVariant:
    """The llm_node alone: livekit's default (`provider.chat`) or a `Turn`."""

    def __init__(self, name: str, engine: TurnEngine, *, livekit_default: bool) -> None:
        self.name, self._engine, self._livekit_default = name, engine, livekit_default

    async def start(self) -> None:
        pass

    async def turn(self, user_text: str) -> tuple[float, float | None]:
        ctx, first = chat_ctx(user_text), None
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
        return started, first

    async def aclose(self) -> None:
        await self._engine.llm.aclose()


Variant = SessionVariant | NodeVariant


def session_variants(base_url: str) -> list[Variant]:
    """livekit's plain `Agent` against our `Assistant`, tool pass streamed and blocking."""
    agent_tools: list[llm.Tool | llm.Toolset] = [*TOOLS]
    plain = Agent(instructions=DEFAULT_INSTRUCTIONS, tools=agent_tools)
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
    livekit = "livekit default llm_node (provider.chat)"
    return [
        NodeVariant(livekit, bench_engine(base_url), livekit_default=True),
        NodeVariant(OURS_DEFAULT, bench_engine(base_url), livekit_default=False),
        NodeVariant(BLOCKING, bench_engine(base_url, tool_pass="blocking"), livekit_default=False),
    ]


async def collect(
    server: RemoteLLMServer,
    variants: list[Variant],
    replies: list[Reply],
    *,
    reps: int,
    warmup: int,
) -> dict[str, list[Sample]]:
    """`reps` turns of each variant after `warmup`, each answered by `replies`."""
    samples: dict[str, list[Sample]] = {v.name: [] for v in variants}
    try:
        for v in variants:
            await v.start()
        for k, (measured, v) in enumerate(interleaved(variants, reps=reps, warmup=warmup)):
            server.reset()
            server.script(*replies)
            TOOL_CLOCK.runs.clear()
            started, first = await v.turn(f"Question {k} for {v.name}?")
            if first is None:
                raise RuntimeError(f"{v.name}: said nothing")
            await settle()
            if measured:
                run = TOOL_CLOCK.runs[0] if TOOL_CLOCK.runs else None
                samples[v.name].append(Sample(started, first, server.requests(), run))
    finally:
        for v in variants:
            await v.aclose()
    return samples
