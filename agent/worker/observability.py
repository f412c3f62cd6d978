"""The worker's side of metrics, traces and load: what the entrypoint calls, in one place.

- In the main process: the load livekit reports to LiveKit (active sessions over
  `MAX_SESSIONS`), the directory job processes leave their metrics in, and `/metrics` on
  the worker's own HTTP port.
- In each job process: tracing set up once (`prepare_process`), and each session's
  metrics and turn spans hooked up (`observe_session`).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
from collections.abc import Callable, Coroutine
from typing import Any, get_args

from aiohttp import web
from livekit.agents import AgentServer, AgentSession, llm
from prometheus_client import CONTENT_TYPE_LATEST

from agent.config.resolved import Config
from agent.config.settings import Settings
from agent.engine.turn_stats import PassKind, ToolOutcome, TurnOutcome
from agent.engine.turns import TurnEngine
from agent.ops.metrics import SessionMetrics, declare_known, exposition, mark_process_dead
from agent.ops.tracing import configure_tracing, flush_traces, record_turn_spans
from agent.wiring import build_llm_backends, build_tools


class SessionLoad:
    """livekit's `load_fnc`: the share of `max_sessions` in use.

    livekit's default is the machine's CPU, which says little about long voice calls
    that idle between turns; sessions are what a worker runs out of."""

    def __init__(self, max_sessions: int) -> None:
        self.max_sessions = max_sessions

    def __call__(self, server: AgentServer) -> float:
        return len(server.active_jobs) / self.max_sessions


def metrics_dir(settings: Settings) -> str:
    """Where job processes write their metrics; livekit empties it at start and sets
    `PROMETHEUS_MULTIPROC_DIR` for the job processes it forks.

    Unset, a temporary directory that the worker removes when it exits (each start would
    otherwise leave one in /tmp)."""
    if settings.prometheus_multiproc_dir is not None:
        return str(settings.prometheus_multiproc_dir)
    path = tempfile.mkdtemp(prefix="voice-agent-metrics-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


class MetricsRoute:
    """`GET /metrics`: every job process's metrics (the multiprocess files under
    `PROMETHEUS_MULTIPROC_DIR`), and the main process's own: livekit's `lk_agents_*` and
    the series of every label value the configuration makes known, at 0 until they count
    (declared before the first answer, so that no scrape ever lacks them)."""

    def __init__(self, config: Callable[[], Config]) -> None:
        self._config = config
        self._declared = False
        self._declaring = asyncio.Lock()

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        # one declaration, by the first scrape; a scrape during it waits for it, and one
        # that failed (the configuration could not build a backend) is tried again
        async with self._declaring:
            if not self._declared:
                await declare_configured(self._config())
                self._declared = True
        body = await asyncio.to_thread(exposition)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def declare_configured(config: Config) -> None:
    """The configured LLM backends (by the label their turns are counted under) and tools,
    with the engine's outcomes and pass kinds, as series at 0."""
    backends = build_llm_backends(config)
    try:
        labels = [b.label for b in backends]
    finally:
        for backend in backends:
            await backend.aclose()
    tools = llm.ToolContext(build_tools(config)).function_tools
    declare_known(
        outcomes=get_args(TurnOutcome),
        pass_kinds=get_args(PassKind),
        tool_outcomes=get_args(ToolOutcome),
        llm_backends=labels,
        tools=tools,
    )


ShutdownCallback = Callable[[], Coroutine[Any, Any, None]]


def prepare_process(settings: Settings) -> None:
    """Once per job process: traces go to the OTLP endpoint, if one is set."""
    configure_tracing(settings.otel_exporter_otlp_endpoint)


def observe_session(
    session: AgentSession[Any],
    engine: TurnEngine,
    *,
    settings: Settings,
    add_shutdown_callback: Callable[[ShutdownCallback], None],
) -> SessionMetrics:
    observed = SessionMetrics(session, engine)
    if settings.otel_exporter_otlp_endpoint:
        engine.on_turn_finished.append(record_turn_spans)

    async def _job_ended() -> None:
        observed.close()
        if settings.otel_exporter_otlp_endpoint:
            # off the loop: the exporter blocks on HTTP
            await asyncio.to_thread(flush_traces)
        # livekit exported PROMETHEUS_MULTIPROC_DIR before forking this process
        if settings.prometheus_multiproc_dir is not None:
            mark_process_dead(str(settings.prometheus_multiproc_dir), os.getpid())

    add_shutdown_callback(_job_ended)
    return observed
