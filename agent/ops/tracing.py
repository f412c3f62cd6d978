"""OpenTelemetry traces, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

livekit-agents already traces a session (`agent_session`, `user_turn`, `agent_turn`,
`llm_node`, `tts_node`, ...) through its own tracer; `set_tracer_provider` gives it an
OTLP/HTTP exporter. The turn engine adds what livekit cannot see inside our `llm_node`:
one `voice_agent.turn` span per turn with a span per LLM pass and per tool call, as
children of livekit's `llm_node` span. They are written when the turn finishes, from the
times `TurnStats` recorded, so tracing never sits in the path of a word being said.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from livekit.agents.telemetry import set_tracer_provider, tracer
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, Status, StatusCode, set_span_in_context

if TYPE_CHECKING:  # the engine imports ops (logging): only its types come up here
    from agent.engine.turns import Turn


SERVICE_NAME = "voice-agent"

_providers: list[TracerProvider] = []
"""This process's provider, once configured (a list: no `global` statement needed)."""


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a base endpoint, as the OTel spec builds it."""
    return endpoint.rstrip("/") + "/v1/traces"


def configure_tracing(
    endpoint: str | None, *, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Send livekit's spans and ours to `endpoint` (an OTLP/HTTP base URL); None: off.

    Each process (the worker and every job process) calls it once; the provider's
    batch processor exports in the background. `exporter` replaces the OTLP one."""
    if endpoint is None and exporter is None:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    span_exporter = exporter or OTLPSpanExporter(endpoint=traces_url(endpoint or ""))
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    # conversation text stays out of exported spans unless the operator asks for it
    set_tracer_provider(provider, allow_pii=False)
    _providers[:] = [provider]
    return provider


def flush_traces(timeout_s: float = 5.0) -> None:
    """Export what is queued: a job process exits soon after its session ends."""
    for provider in _providers:
        provider.force_flush(timeout_millis=int(timeout_s * 1000))


def record_turn_spans(turn: Turn) -> None:
    """The turn, its passes and its tools as spans, back-dated to when they happened."""
    # TurnStats keeps perf_counter() times; spans want wall-clock nanoseconds
    offset_ns = time.time_ns() - time.perf_counter_ns()

    def wall(perf: float) -> int:
        return int(perf * 1e9) + offset_ns

    stats = turn.stats
    root = tracer.start_span(
        "voice_agent.turn",
        start_time=wall(stats.started_at),
        attributes={
            "voice_agent.turn_id": turn.id,
            "voice_agent.outcome": stats.outcome,
            "voice_agent.backend": turn.backend,
            "voice_agent.passes": len(stats.passes),
            "voice_agent.tool_calls": len(stats.tools),
        },
    )
    ctx = set_span_in_context(root)
    end = stats.started_at
    for p in stats.passes:
        span = tracer.start_span(
            "voice_agent.llm_pass",
            context=ctx,
            start_time=wall(p.started_at),
            attributes={
                "voice_agent.pass_kind": p.kind,
                "voice_agent.outcome": p.outcome,
                "voice_agent.text_chars": p.text_chars,
                "voice_agent.tool_calls": p.tool_calls,
                **({"voice_agent.ttft_s": p.ttft} if p.ttft is not None else {}),
            },
        )
        _end(span, wall(p.started_at + p.duration), ok=p.outcome == "ok")
        end = max(end, p.started_at + p.duration)
    for run in stats.tools:
        span = tracer.start_span(
            "voice_agent.tool",
            context=ctx,
            start_time=wall(run.started_at),
            attributes={"voice_agent.tool": run.name, "voice_agent.outcome": run.outcome},
        )
        _end(span, wall(run.started_at + run.duration), ok=run.outcome == "ok")
    _end(root, wall(max(end, time.perf_counter())), ok=stats.outcome == "answered")


def _end(span: Span, end_ns: int, *, ok: bool) -> None:
    if not ok:
        span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=end_ns)
