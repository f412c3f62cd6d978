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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import Agent, AgentSession, llm
from livekit.agents.llm import function_tool

from agent.assistant import Assistant
from agent.config import DEFAULT_INSTRUCTIONS
from agent.tools import get_current_time
from agent.turns import TurnEngine
from tests.servers.openai_server import ToolCall, text_reply, tool_reply

from .common import REPLY, FirstTextOutput, chat_ctx, make_engine, make_provider, settle
from .server_proc import RemoteLLMServer, ServedRequest


@dataclass(frozen=True, slots=True)
class Backend:
    """What the scripted model does: its time to first token and token rate."""

    ttft: float
    token_delay: float
    tool_seconds: float


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

TurnRunner = Callable[[str], Awaitable[tuple[float, float]]]


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
        self._out.arm()
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
    streamed, blocking = make_engine(base_url), make_engine(base_url, "blocking")
    plain = make_provider(base_url)
    return [
        SessionVariant(
            "livekit Agent (default llm_node)",
            Agent(instructions=DEFAULT_INSTRUCTIONS, tools=AGENT_TOOLS),
            plain,
        ),
        SessionVariant(
            OURS_DEFAULT,
            Assistant(engine=streamed, instructions=DEFAULT_INSTRUCTIONS, tools=TOOLS),
            streamed.llm,
        ),
        SessionVariant(
            "ours, blocking tool pass (CAAL-style)",
            Assistant(engine=blocking, instructions=DEFAULT_INSTRUCTIONS, tools=TOOLS),
            blocking.llm,
        ),
    ]


def node_variants(base_url: str) -> list[Variant]:
    return [
        NodeVariant(
            "livekit default llm_node (provider.chat)",
            make_engine(base_url),
            livekit_default=True,
        ),
        NodeVariant(OURS_DEFAULT, make_engine(base_url), livekit_default=False),
        NodeVariant(
            "ours, blocking tool pass (CAAL-style)",
            make_engine(base_url, "blocking"),
            livekit_default=False,
        ),
    ]


async def _collect(
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


@dataclass(frozen=True, slots=True)
class NoToolRow:
    level: str
    variant: str
    ratios: list[float]
    added_ms: list[float]
    server_ttft_ms: list[float]


@dataclass(frozen=True, slots=True)
class ToolRow:
    level: str
    variant: str
    overhead_ms: list[float]
    before_tool_ms: list[float]
    after_tool_ms: list[float]
    delivery_ms: list[float]


async def no_tool_turn(
    server: RemoteLLMServer, backend: Backend, *, reps: int, warmup: int
) -> list[NoToolRow]:
    """Section 1: a turn the model answers without tools (tools are offered)."""

    def script() -> list[object]:
        return [text_reply(REPLY, ttft=backend.ttft, token_delay=backend.token_delay)]

    rows: list[NoToolRow] = []
    for level, variants in (
        ("session", session_variants(server.base_url)),
        ("llm_node", node_variants(server.base_url)),
    ):
        for name, samples in (
            await _collect(server, variants, script, reps=reps, warmup=warmup)
        ).items():
            ratios, added, ttfts = [], [], []
            for s in samples:
                served = s.served[0]
                assert served.first_token_at is not None
                srv_ttft = served.first_token_at - served.received_at
                out = s.first_text_at - s.started_at
                ratios.append(out / srv_ttft)
                added.append((out - srv_ttft) * 1000)
                ttfts.append(srv_ttft * 1000)
            rows.append(NoToolRow(level, name, ratios, added, ttfts))
    return rows


async def tool_turn(
    server: RemoteLLMServer, backend: Backend, *, reps: int, warmup: int
) -> list[ToolRow]:
    """Section 2: one tool call, then the spoken answer.

    Ideal first words = tool-call response complete + tool time + the speaking pass's
    server TTFT; the overhead is how much later the words actually came out.
    """
    TOOL_CLOCK.seconds = backend.tool_seconds

    def script() -> list[object]:
        return [
            tool_reply(ToolCall("lookup_order", {"order_id": 42}), ttft=backend.ttft),
            text_reply(REPLY, ttft=backend.ttft, token_delay=backend.token_delay),
        ]

    rows: list[ToolRow] = []
    samples_by_variant = await _collect(
        server, session_variants(server.base_url), script, reps=reps, warmup=warmup
    )
    for name, samples in samples_by_variant.items():
        overhead, before, after, delivery = [], [], [], []
        for s in samples:
            if s.tool_run is None or len(s.served) < 2:
                raise RuntimeError(f"{name}: the tool turn did not run the tool and speak")
            tool_pass, speak = s.served[0], s.served[1]
            assert tool_pass.finished_at is not None and speak.first_token_at is not None
            tool_start, tool_end = s.tool_run
            ideal = (
                tool_pass.finished_at
                + (tool_end - tool_start)
                + (speak.first_token_at - speak.received_at)
            )
            overhead.append((s.first_text_at - ideal) * 1000)
            before.append((tool_start - tool_pass.finished_at) * 1000)
            after.append((speak.received_at - tool_end) * 1000)
            delivery.append((s.first_text_at - speak.first_token_at) * 1000)
        rows.append(ToolRow("session", name, overhead, before, after, delivery))
    return rows
