"""Prometheus metrics: every definition, and the hook that feeds them from one session.

Sessions run in livekit's job processes; the worker's main process serves `/metrics`.
prometheus-client's multiprocess mode joins the two: livekit sets
`PROMETHEUS_MULTIPROC_DIR` (and empties it) before it forks the job processes, each
job process writes its values there, and the main process reads them all per scrape
(`livekit.agents.telemetry.http_server.metrics`). A gauge that only means something
while its process lives (`active_sessions`) sums the live processes' values, and a job
process marks itself dead when it ends.

The numbers come from what livekit already measures (its `metrics_collected` events, the
metrics it attaches to each assistant message, its error and fallback events) and from
the turn engine's own `TurnStats`; nothing here keeps a clock of its own.

Label values never carry a secret: backends are named by their provider label, with
any user:password@ in a URL removed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from livekit.agents import AgentSession, llm, stt, tts
from livekit.agents.voice import (
    CloseEvent,
    ConversationItemAddedEvent,
    ErrorEvent,
    MetricsCollectedEvent,
)
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric

if TYPE_CHECKING:  # the engine imports ops (logging): only its types come up here
    from agent.engine.turns import Turn, TurnEngine


# voice latencies: tens of milliseconds up to several seconds
_LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
_TOOL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

TURNS = Counter(
    "voice_agent_turns", "User turns answered by the turn engine, by how they ended", ["outcome"]
)
ACTIVE_SESSIONS = Gauge(
    "voice_agent_active_sessions",
    "Voice sessions running on this worker",
    # summed over the job processes that are alive
    multiprocess_mode="livesum",
)
EOS_TO_FIRST_AUDIO = Histogram(
    "voice_agent_eos_to_first_audio_seconds",
    "End of user speech to the agent's first audio (livekit's e2e latency)",
    buckets=_LATENCY_BUCKETS,
)
STT_DURATION = Histogram(
    "voice_agent_stt_duration_seconds",
    "Speech recognition request time, per request",
    buckets=_LATENCY_BUCKETS,
)
LLM_TTFT = Histogram(
    "voice_agent_llm_ttft_seconds",
    "LLM request to its first spoken text, per pass of the turn engine",
    ["pass_kind"],
    buckets=_LATENCY_BUCKETS,
)
TTS_TTFB = Histogram(
    "voice_agent_tts_ttfb_seconds",
    "Speech synthesis request to its first audio",
    buckets=_LATENCY_BUCKETS,
)
TOOL_DURATION = Histogram(
    "voice_agent_tool_duration_seconds",
    "Tool call duration, by tool and outcome",
    ["tool", "outcome"],
    buckets=_TOOL_BUCKETS,
)
BACKEND_ERRORS = Counter(
    "voice_agent_backend_errors",
    "Backend failures (an LLM turn apologised for, an STT/TTS error), by backend",
    ["kind", "backend"],
)
FALLBACKS = Counter(
    "voice_agent_fallbacks",
    "Times a backend was marked unavailable and its fallback chain moved on",
    ["kind", "backend"],
)
FILLER = Counter("voice_agent_filler", "Filler sentences said while slow tools ran")
INTERRUPTIONS = Counter("voice_agent_interruptions", "Agent replies interrupted by the user")

_USERINFO = re.compile(r"//[^/@\s]*@")


def backend_label(label: str) -> str:
    """A backend's name fit for a label: `user:password@` in any URL removed."""
    return _USERINFO.sub("//", label)


def record_turn(turn: Turn) -> None:
    """What one finished turn adds: its outcome, each pass's TTFT, each tool, the filler."""
    stats = turn.stats
    TURNS.labels(outcome=stats.outcome).inc()
    for p in stats.passes:
        if p.ttft is not None:
            LLM_TTFT.labels(pass_kind=p.kind).observe(p.ttft)
    for run in stats.tools:
        # a tool name the model made up is not a tool: one label for all of them
        name = run.name if run.name in turn.tool_names else "unknown"
        TOOL_DURATION.labels(tool=name, outcome=run.outcome).observe(run.duration)
    if turn.filler is not None:
        FILLER.inc()
    if stats.outcome == "apology":
        BACKEND_ERRORS.labels(kind="llm", backend=backend_label(turn.backend)).inc()


class SessionMetrics:
    """Feeds the metrics from one `AgentSession` and the turn engine that answers it."""

    def __init__(self, session: AgentSession[Any], engine: TurnEngine) -> None:
        self._open = True
        ACTIVE_SESSIONS.inc()
        engine.on_turn_finished.append(record_turn)
        session.on("metrics_collected", self._on_metrics)
        session.on("conversation_item_added", self._on_item)
        session.on("error", self._on_error)
        session.on("close", self._on_close)
        # several backends: livekit's adapters say when one is given up on
        if isinstance(engine.llm, llm.FallbackAdapter):
            engine.llm.on("llm_availability_changed", self._on_availability("llm"))
        if isinstance(session.stt, stt.FallbackAdapter):
            session.stt.on("stt_availability_changed", self._on_availability("stt"))
        if isinstance(session.tts, tts.FallbackAdapter):
            session.tts.on("tts_availability_changed", self._on_availability("tts"))

    def _on_metrics(self, ev: MetricsCollectedEvent) -> None:
        m = ev.metrics
        if m.type == "stt_metrics" and m.duration > 0:
            STT_DURATION.observe(m.duration)
        elif m.type == "tts_metrics" and m.ttfb >= 0 and not m.cancelled:
            TTS_TTFB.observe(m.ttfb)

    def _on_item(self, ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if not isinstance(item, llm.ChatMessage) or item.role != "assistant":
            return
        if item.interrupted:
            INTERRUPTIONS.inc()
        # a greeting or a typed turn has no end of speech, and so no e2e latency
        if (e2e := item.metrics.get("e2e_latency")) is not None:
            EOS_TO_FIRST_AUDIO.observe(e2e)

    def _on_error(self, ev: ErrorEvent) -> None:
        kind = str(getattr(ev.error, "type", "error")).removesuffix("_error")
        label = getattr(ev.error, "label", None) or type(ev.source).__name__
        BACKEND_ERRORS.labels(kind=kind, backend=backend_label(str(label))).inc()

    def _on_availability(self, kind: str) -> Any:
        def changed(ev: Any) -> None:
            if not ev.available:
                backend = getattr(ev, kind)
                FALLBACKS.labels(kind=kind, backend=backend_label(str(backend.label))).inc()

        return changed

    def _on_close(self, _: CloseEvent) -> None:
        self.close()

    def close(self) -> None:
        if self._open:
            self._open = False
            ACTIVE_SESSIONS.dec()


def declare_known(
    *,
    outcomes: Iterable[str],
    pass_kinds: Iterable[str],
    tool_outcomes: Iterable[str],
    llm_backends: Iterable[str],
    tools: Iterable[str],
) -> None:
    """In the worker's main process, at start-up: every label value known before the first
    turn (turn outcomes, pass kinds, the configured LLM backends and tools) gets its series
    at 0, so that `rate()` and alerts see zero rather than no data."""
    for outcome in outcomes:
        TURNS.labels(outcome=outcome)
    for kind in pass_kinds:
        LLM_TTFT.labels(pass_kind=kind)
    tool_outcomes = list(tool_outcomes)
    for tool in [*tools, "unknown"]:
        for tool_outcome in tool_outcomes:
            TOOL_DURATION.labels(tool=tool, outcome=tool_outcome)
    for backend in llm_backends:
        BACKEND_ERRORS.labels(kind="llm", backend=backend_label(backend))
        FALLBACKS.labels(kind="llm", backend=backend_label(backend))


class _Merged:
    """The job processes' values (prometheus-client's multiprocess files) first, then this
    process's own registry for whatever they lack: the series declared at 0 and livekit's
    `lk_agents_*` metrics of the main process, which live in its memory, not in files
    (prometheus-client chose that when it was imported, before livekit set the
    directory). A series both have is taken once, from the files."""

    def __init__(self, *sources: Any) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        for source in self._sources:
            for family in source.collect():
                merged = families.get(family.name)
                if merged is None:
                    merged = families[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                for sample in family.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    # `_created` is when this process made a series: not the series' age
                    if sample.name.endswith("_created") or key in seen:
                        continue
                    seen.add(key)
                    merged.samples.append(sample)
        yield from (f for f in families.values() if f.samples)


def exposition() -> bytes:
    """`/metrics`: every process's metrics, and this process's own, in the text format."""
    sources: list[Any] = []
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    # a folder removed under the worker (a temp cleaner) loses the job processes' series,
    # not this process's own: prometheus-client's collector would fail the whole scrape
    if directory and os.path.isdir(directory):
        sources.append(multiprocess.MultiProcessCollector(None))  # type: ignore[no-untyped-call]
    sources.append(REGISTRY)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(*sources))
    return generate_latest(registry)


def mark_process_dead(directory: str, pid: int) -> None:
    """Called as a job process ends: its live gauges stop counting (its counters and
    histograms stay in the totals)."""
    multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
