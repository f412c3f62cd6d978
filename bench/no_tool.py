"""Sections: a turn the model answers without tools (tools are offered), and a turn with one
tool call (and the filler for a slow tool); the variants and turns that time first words."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import Agent, AgentSession, llm
from livekit.agents.llm import function_tool
from livekit.agents.voice import io

from agent.config.settings import DEFAULT_INSTRUCTIONS
from agent.engine.turns import TurnEngine
from agent.tools import get_current_time
from agent.voice.assistant import Assistant
from testing.engine import make_llm
from testing.servers.openai_server import Reply, Request, ToolCall, text_reply, tool_reply

from .sections import REPLY, Context, Part, T, bench_engine, cells, goal, p50, summary, table

NAME = "no-tool"
TITLE = "No-tool turn: time to first text out / server's time to first token"
OURS_DEFAULT = "ours, streamed tool pass (default)"
BLOCKING = "ours, blocking tool pass (CAAL-style)"
FILLER_VARIANT = "ours, slow tool: filler out - (tool call complete + TOOL_FILLER_DELAY)"


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


def chat_ctx(user_text: str, *, history_turns: int = 2) -> llm.ChatContext:
    """A realistic request: the default system prompt, a little history, the user's turn."""
    ctx = llm.ChatContext()
    ctx.add_message(role="system", content=DEFAULT_INSTRUCTIONS)
    for i in range(history_turns):
        ctx.add_message(role="user", content=f"Earlier question number {i}?")
        ctx.add_message(role="assistant", content=f"Earlier answer number {i}.")
    ctx.add_message(role="user", content=user_text)
    return ctx


class FirstTextOutput(io.TextOutput):
    """An AgentSession text sink that notes when the first words of a reply came out."""

    def __init__(self) -> None:
        super().__init__(label="bench", next_in_chain=None)
        self.first_at: float | None = None

    async def capture_text(self, text: str) -> None:
        if self.first_at is None and text.strip():
            self.first_at = time.perf_counter()

    def flush(self) -> None:
        pass


def interleaved(variants: Sequence[T], *, reps: int, warmup: int) -> Iterator[tuple[bool, T]]:
    """Each variant `warmup + reps` times, turn by turn, who goes first rotating each
    repetition (a noisy neighbour slows all alike); with whether the turn is measured."""
    for rep in range(-warmup, reps):
        k = rep % len(variants)
        for variant in [*variants[k:], *variants[:k]]:
            yield rep >= 0, variant


async def settle() -> None:
    """Let tasks a finished turn left behind (logging, stream cleanup) run before the next."""
    for _ in range(3):
        await asyncio.sleep(0)


@dataclass(slots=True)
class Sample:
    """One turn: client-side first text out and what the server recorded."""

    started_at: float
    first_text_at: float
    served: list[Request]
    tool_run: tuple[float, float] | None = None


class SessionVariant:
    """A text-mode `AgentSession` kept for the whole run; history reset after every turn."""

    def __init__(self, name: str, agent: Agent, provider: llm.LLM[Any]) -> None:
        self.name, self._agent, self._provider = name, agent, provider
        self._session: AgentSession[None] = AgentSession(llm=provider)
        self._out: FirstTextOutput | None = None

    async def turn(self, user_text: str) -> tuple[float, float | None]:
        if self._out is None:  # the first turn starts the session
            self._session.output.transcription = self._out = FirstTextOutput()
            await self._session.start(self._agent)
        self._out.first_at = None
        started = time.perf_counter()
        await self._session.run(user_input=user_text)
        # the same short history before every turn, so request size stays constant (less the
        # system prompt, which the session adds, and the user's turn)
        await self._agent.update_chat_ctx(llm.ChatContext(chat_ctx("").items[1:-1]))
        return started, self._out.first_at

    async def aclose(self) -> None:
        await self._session.aclose()
        await self._provider.aclose()


class NodeVariant:
    """The llm_node alone: livekit's default (`provider.chat`) or a `Turn`."""

    def __init__(self, name: str, engine: TurnEngine, *, livekit_default: bool) -> None:
        self.name, self._engine, self._livekit_default = name, engine, livekit_default

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
Samples = dict[str, list[Sample]]


def session_variants(base_url: str) -> list[Variant]:
    """livekit's plain `Agent` against our `Assistant`, tool pass streamed and blocking."""
    plain = Agent(instructions=DEFAULT_INSTRUCTIONS, tools=[*TOOLS])
    variants: list[Variant] = [
        SessionVariant("livekit Agent (default llm_node)", plain, make_llm(base_url, timeout=30.0))
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


async def collect(ctx: Context, variants: list[Variant], replies: list[Reply]) -> Samples:
    """The plan's `reps` turns of each variant after its `warmup`, answered by `replies`."""
    server, reps, warmup = ctx.server, ctx.plan.reps, ctx.plan.warmup
    samples: Samples = {v.name: [] for v in variants}
    try:
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


@dataclass(frozen=True, slots=True)
class Row:
    """A variant's numbers per measured turn, by key (ms, or the no-tool section's ratio)."""

    level: str
    variant: str
    series: dict[str, list[float]]


async def run(ctx: Context) -> list[Row]:
    """Per turn: first text out / server TTFT, their difference, the server TTFT."""
    plan, server, rows = ctx.plan, ctx.server, []
    keys = ("ratio", "added_ms", "server_ttft_ms")
    reply = text_reply(REPLY, ttft=plan.ttft, token_delay=plan.token_delay)
    for level, variants in (("session", session_variants), ("llm_node", node_variants)):
        for name, samples in (await collect(ctx, variants(server.base_url), [reply])).items():
            rows.append(row := Row(level, name, {k: [] for k in keys}))
            for s in samples:
                server_ttft = s.served[0].ttft
                assert server_ttft is not None
                out = s.first_text_at - s.started_at
                row.series["ratio"].append(out / server_ttft)
                row.series["added_ms"].append((out - server_ttft) * 1000)
                row.series["server_ttft_ms"].append(server_ttft * 1000)
    return rows


def ours(rows: list[Row], level: str) -> Row | None:
    return next((r for r in rows if r.level == level and r.variant == OURS_DEFAULT), None)


def render(rows: list[Row]) -> list[str]:
    blocks = [
        "Tools are offered; the model answers without them. Method: docs/benchmarks.md#no-tool.",
        table(
            "level | variant | ratio p50 | ratio p95 | added ms p50 | added ms p95 | "
            "server TTFT ms p50",
            [
                [
                    r.level,
                    r.variant,
                    *cells(r.series["ratio"], ".3f"),
                    *cells(r.series["added_ms"]),
                    f"{p50(r.series['server_ttft_ms']):.1f}",
                ]
                for r in rows
            ],
        ),
    ]
    if (default := ours(rows, "session")) is not None:
        ratio = p50(default.series["ratio"])
        blocks.append(
            goal(("ratio <= 1.05 for our default in a session", f"p50 {ratio:.3f}", ratio <= 1.05))
        )
    return blocks


def numbers(rows: list[Row]) -> Mapping[str, object]:
    return {
        f"{r.level} / {r.variant}": {key: summary(v) for key, v in r.series.items()} for r in rows
    }


@dataclass(frozen=True, slots=True)
class ToolResult:
    rows: list[Row]
    filler_late_ms: list[float]
    filler_delay: float


async def run_tool(ctx: Context) -> ToolResult:
    plan, base_url = ctx.plan, ctx.server.base_url
    filler_delay = ctx.sized(full=0.7, quick=0.05)  # full: the default TOOL_FILLER_DELAY
    replies = [
        tool_reply(ToolCall("lookup_order", {"order_id": 42}), ttft=plan.ttft),
        text_reply(REPLY, ttft=plan.ttft, token_delay=plan.token_delay),
    ]
    TOOL_CLOCK.seconds = plan.tool_seconds
    by_variant = await collect(ctx, session_variants(base_url), replies)
    rows = [_tool_row(name, samples) for name, samples in by_variant.items()]
    # a tool that outlasts the filler delay: the first words out are the filler
    TOOL_CLOCK.seconds = 2 * filler_delay + 0.05
    engine = bench_engine(base_url, filler="One moment.", filler_delay=filler_delay)
    agent = Assistant(engine=engine, instructions=DEFAULT_INSTRUCTIONS, tools=TOOLS)
    slow = await collect(ctx, [SessionVariant(FILLER_VARIANT, agent, engine.llm)], replies)
    late = []
    for s in slow[FILLER_VARIANT]:
        if s.tool_run is None or (tool_call_done := s.served[0].finished_at) is None:
            raise RuntimeError("the slow tool did not run")
        late.append((s.first_text_at - (tool_call_done + filler_delay)) * 1000)
    return ToolResult(rows, late, filler_delay)


def _tool_row(name: str, samples: list[Sample]) -> Row:
    keys = ("overhead_ms", "before_tool_ms", "after_tool_ms", "delivery_ms")
    row = Row("session", name, {k: [] for k in keys})
    for s in samples:
        if s.tool_run is None or len(s.served) < 2:
            raise RuntimeError(f"{name}: the tool turn did not run the tool and speak")
        tool_pass, speak = s.served[0], s.served[1]
        assert tool_pass.finished_at is not None and speak.first_token_at is not None
        assert speak.ttft is not None
        tool_start, tool_end = s.tool_run
        ideal = tool_pass.finished_at + (tool_end - tool_start) + speak.ttft
        row.series["overhead_ms"].append((s.first_text_at - ideal) * 1000)
        row.series["before_tool_ms"].append((tool_start - tool_pass.finished_at) * 1000)
        row.series["after_tool_ms"].append((speak.received_at - tool_end) * 1000)
        row.series["delivery_ms"].append((s.first_text_at - speak.first_token_at) * 1000)
    return row


def render_tool(result: ToolResult) -> list[str]:
    blocks = [
        f"Method: docs/benchmarks.md#tool. TOOL_FILLER_DELAY in the last row: "
        f"{result.filler_delay * 1000:.0f} ms.",
        table(
            "variant | overhead ms p50 | overhead ms p95 | -> tool start p50 | "
            "tool -> next request p50 | first token -> out p50",
            [
                [r.variant, *cells(r.series["overhead_ms"])]
                + [f"{p50(ms):.1f}" for ms in [*r.series.values()][1:]]
                for r in result.rows
            ]
            + [[FILLER_VARIANT, *cells(result.filler_late_ms), "", "", ""]],
        ),
    ]
    if (default := ours(result.rows, "session")) is not None:
        ms = p50(default.series["overhead_ms"])
        blocks.append(goal(("<= +10 ms for our default", f"p50 {ms:.1f} ms", ms <= 10)))
    return blocks


def tool_numbers(result: ToolResult) -> Mapping[str, object]:
    return {
        **{r.variant: {key: summary(ms) for key, ms in r.series.items()} for r in result.rows},
        "filler_late_ms": summary(result.filler_late_ms),
        "filler_delay_s": result.filler_delay,
    }


TOOL_TITLE = "Tool turn: first text out vs tool-call complete + tool time + speaking-pass TTFT"
TOOL = Part("tool", TOOL_TITLE, run_tool, render_tool, tool_numbers)
