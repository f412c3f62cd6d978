"""Section: a turn the model answers without tools (tools are offered)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from testing.servers.openai_server import text_reply

from .common import REPLY
from .first_text import OURS_DEFAULT, collect, node_variants, session_variants
from .sections import Context, p50, p50_p95, summary, table, verdict

NAME = "no-tool"
TITLE = "No-tool turn: time to first text out / server's time to first token"


@dataclass(frozen=True, slots=True)
class NoToolRow:
    level: str
    variant: str
    series: dict[str, list[float]] = field(
        default_factory=lambda: {"ratio": [], "added_ms": [], "server_ttft_ms": []}
    )
    """Per measured turn: first text out / server TTFT, their difference, the server TTFT."""


async def run(ctx: Context) -> list[NoToolRow]:
    backend, server, rows = ctx.plan.backend, ctx.server, []
    reply = text_reply(REPLY, ttft=backend.ttft, token_delay=backend.token_delay)
    for level, variants in (("session", session_variants), ("llm_node", node_variants)):
        turns = variants(server.base_url)
        collected = await collect(
            server, turns, [reply], reps=ctx.plan.reps, warmup=ctx.plan.warmup
        )
        for name, samples in collected.items():
            rows.append(row := NoToolRow(level, name))
            for s in samples:
                server_ttft = s.served[0].ttft
                assert server_ttft is not None
                out = s.first_text_at - s.started_at
                row.series["ratio"].append(out / server_ttft)
                row.series["added_ms"].append((out - server_ttft) * 1000)
                row.series["server_ttft_ms"].append(server_ttft * 1000)
    return rows


def ours(rows: list[NoToolRow], level: str) -> NoToolRow | None:
    return next((r for r in rows if r.level == level and r.variant == OURS_DEFAULT), None)


def render(rows: list[NoToolRow]) -> list[str]:
    blocks = [
        "Tools are offered; the model answers without them. Time to first text out: from "
        "`session.run(user_input=...)` (or the `llm_node` call) to the first words out of "
        "the session (or the node). The server's TTFT is its own record: request received "
        "-> first content chunk written. `session`: a real livekit `AgentSession` in text "
        "mode; `llm_node`: the node alone.",
        table(
            "level | variant | ratio p50 | ratio p95 | added ms p50 | added ms p95 | "
            "server TTFT ms p50",
            [
                [
                    r.level,
                    r.variant,
                    *p50_p95(r.series["ratio"], ".3f"),
                    *p50_p95(r.series["added_ms"]),
                    f"{p50(r.series['server_ttft_ms']):.1f}",
                ]
                for r in rows
            ],
        ),
    ]
    if (default := ours(rows, "session")) is not None:
        ratio = p50(default.series["ratio"])
        blocks.append(
            f"Goal: ratio <= 1.05 for our default in a session: p50 {ratio:.3f}, "
            f"{verdict(ratio <= 1.05)}. The added milliseconds do not depend on the "
            "server's TTFT; the ratio does (a slower model makes it smaller)."
        )
    return blocks


def numbers(rows: list[NoToolRow]) -> Mapping[str, object]:
    return {
        f"{r.level} / {r.variant}": {key: summary(v) for key, v in r.series.items()} for r in rows
    }
