"""Section: one tool call, then the spoken answer; and the filler for a slow tool."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.config.settings import DEFAULT_INSTRUCTIONS
from agent.voice.assistant import Assistant
from testing.servers.openai_server import ToolCall, text_reply, tool_reply

from . import no_tool as ft
from .common import REPLY, bench_engine
from .sections import Context, p50, p50_p95, summary, table, verdict

NAME = "tool"
TITLE = "Tool turn: first text out vs tool-call complete + tool time + speaking-pass TTFT"
FILLER = "One moment."
FILLER_VARIANT = "ours, slow tool: filler out - (tool call complete + TOOL_FILLER_DELAY)"


@dataclass(frozen=True, slots=True)
class ToolRow:
    variant: str
    ms: dict[str, list[float]] = field(
        default_factory=lambda: {
            k: [] for k in ("overhead_ms", "before_tool_ms", "after_tool_ms", "delivery_ms")
        }
    )


@dataclass(frozen=True, slots=True)
class ToolResult:
    rows: list[ToolRow]
    filler_late_ms: list[float]
    filler_delay: float


async def run(ctx: Context) -> ToolResult:
    # full: the default TOOL_FILLER_DELAY
    base_url, filler_delay = ctx.server.base_url, ctx.sized(full=0.7, quick=0.05)
    ft.TOOL_CLOCK.seconds = ctx.plan.backend.tool_seconds
    by_variant = await _turns(ctx, ft.session_variants(base_url))
    rows = [_row(name, samples) for name, samples in by_variant.items()]
    # a tool that outlasts the filler delay: the first words out are the filler
    ft.TOOL_CLOCK.seconds = 2 * filler_delay + 0.05
    engine = bench_engine(base_url, filler=FILLER, filler_delay=filler_delay)
    agent = Assistant(engine=engine, instructions=DEFAULT_INSTRUCTIONS, tools=ft.TOOLS)
    slow = await _turns(ctx, [ft.SessionVariant(FILLER_VARIANT, agent, engine.llm)])
    late = []
    for s in slow[FILLER_VARIANT]:
        if s.tool_run is None or (tool_call_done := s.served[0].finished_at) is None:
            raise RuntimeError("the slow tool did not run")
        late.append((s.first_text_at - (tool_call_done + filler_delay)) * 1000)
    return ToolResult(rows, late, filler_delay)


async def _turns(ctx: Context, variants: list[ft.Variant]) -> ft.Samples:
    backend = ctx.plan.backend
    replies = [
        tool_reply(ToolCall("lookup_order", {"order_id": 42}), ttft=backend.ttft),
        text_reply(REPLY, ttft=backend.ttft, token_delay=backend.token_delay),
    ]
    return await ft.collect(ctx, variants, replies)


def _row(name: str, samples: list[ft.Sample]) -> ToolRow:
    row = ToolRow(name)
    for s in samples:
        if s.tool_run is None or len(s.served) < 2:
            raise RuntimeError(f"{name}: the tool turn did not run the tool and speak")
        tool_pass, speak = s.served[0], s.served[1]
        assert tool_pass.finished_at is not None and speak.first_token_at is not None
        assert speak.ttft is not None
        tool_start, tool_end = s.tool_run
        ideal = tool_pass.finished_at + (tool_end - tool_start) + speak.ttft
        row.ms["overhead_ms"].append((s.first_text_at - ideal) * 1000)
        row.ms["before_tool_ms"].append((tool_start - tool_pass.finished_at) * 1000)
        row.ms["after_tool_ms"].append((speak.received_at - tool_end) * 1000)
        row.ms["delivery_ms"].append((s.first_text_at - speak.first_token_at) * 1000)
    return row


def render(result: ToolResult) -> list[str]:
    blocks = [
        "One tool call, the tool, then the speaking pass (method: docs/benchmarks.md#tool). "
        f"Last row: a tool slower than TOOL_FILLER_DELAY ({result.filler_delay * 1000:.0f} ms "
        "here): filler out - (tool-call response complete + the delay).",
        table(
            "variant | overhead ms p50 | overhead ms p95 | -> tool start p50 | "
            "tool -> next request p50 | first token -> out p50",
            [
                [r.variant, *p50_p95(r.ms["overhead_ms"])]
                + [f"{p50(ms):.1f}" for ms in [*r.ms.values()][1:]]
                for r in result.rows
            ]
            + [[FILLER_VARIANT, *p50_p95(result.filler_late_ms), "", "", ""]],
        ),
    ]
    if ours := [r for r in result.rows if r.variant == ft.OURS_DEFAULT]:
        ms = p50(ours[0].ms["overhead_ms"])
        blocks.append(f"Goal: <= +10 ms for our default: p50 {ms:.1f} ms, {verdict(ms <= 10)}.")
    return blocks


def numbers(result: ToolResult) -> Mapping[str, object]:
    return {
        **{r.variant: {key: summary(ms) for key, ms in r.ms.items()} for r in result.rows},
        "filler_late_ms": summary(result.filler_late_ms),
        "filler_delay_s": result.filler_delay,
    }
