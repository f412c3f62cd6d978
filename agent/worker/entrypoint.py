"""The LiveKit worker: an `AgentServer` whose sessions run VAD → STT → turn engine → TTS.

The server process validates the configuration once; each job process (forked by
livekit) loads the silero VAD once in `prewarm` and then serves sessions. A session
never ends because a backend failed: the turn engine apologises for the LLM, the
`SessionObserver` speaks up when speech recognition fails, and the session's error
tolerance is raised so that livekit keeps recreating the STT/TTS streams instead of
closing the room.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from livekit.agents import AgentSession, JobContext, JobProcess

from agent.config.live import LiveConfig
from agent.config.resolved import Config
from agent.ops.logging import (
    bind_context,
    configure_job_process_logging,
    configure_logging,
    get_logger,
)
from agent.voice.observer import SessionObserver
from agent.voice.room_events import RoomEvents, room_sender
from agent.wiring import build_agent, build_llm, build_session
from agent.worker.observability import (
    MetricsRoute,
    SessionLoad,
    metrics_dir,
    observe_session,
    prepare_process,
)
from agent.worker.reload import (
    job_live_config,
    report_rejection,
    session_config,
    worker_live_config,
)
from agent.worker.server import VoiceAgentServer
from providers import prewarm_stt

log = get_logger("agent.worker")


# --- the session ------------------------------------------------------------------


def greet(session: AgentSession[Any], greeting: str) -> None:
    """Say the configured greeting (a fixed line: no LLM round trip before the first word)."""
    if greeting.strip():
        session.say(greeting, allow_interruptions=True)


# --- the worker ---------------------------------------------------------------------


def prewarm(proc: JobProcess) -> None:
    """Runs once per job process, before it takes sessions."""
    proc.userdata["live_config"] = _live_config_for_process()
    # the VAD's ONNX model ships inside the plugin wheel: nothing is downloaded here
    config, _vad = session_config(proc)
    # an STT in the worker (Moonshine) loads its model here, once per job process
    prewarm_stt([b.options for b in config.backends.stt_backends])
    prepare_process(config.settings)


async def entrypoint(ctx: JobContext) -> None:
    # `.env` as saved now (if it changed and passes): sessions in progress keep theirs
    config, vad_model = session_config(ctx.proc)
    settings = config.settings
    with bind_context(session_id=uuid.uuid4().hex[:12], room=ctx.room.name):
        session = build_session(config, vad=vad_model)
        SessionObserver(session, stt_error_reply=settings.agent_stt_error_reply)
        log.info(
            "session starting",
            llm_model=config.backends.llm_backends[0].options.model,
            stt=config.backends.stt_backends[0].options.location,
            tts=config.backends.tts_backends[0].options.base_url,
            config_revision=ctx.proc.userdata["live_config"].status().revision,
        )
        # livekit closes the session's speech clients; the LLM client is ours to close
        turn_llm = build_llm(config)
        ctx.add_shutdown_callback(turn_llm.aclose)
        agent = build_agent(config, turn_llm=turn_llm)
        # tool status and turn latency for the talk page (and any client), on a data topic
        events = RoomEvents(room_sender(ctx.room))
        agent.engine.tool_listener = events
        events.attach(session)
        ctx.add_shutdown_callback(events.aclose)
        observe_session(
            session,
            agent.engine,
            settings=settings,
            add_shutdown_callback=ctx.add_shutdown_callback,
        )
        # A closed session (its participant left, or it failed) ends the job. livekit
        # would keep the job, and its place in the worker's load, until LiveKit deletes
        # the room (20 s after its last participant left), and for good if LiveKit
        # restarts meanwhile: the job rejoins the new room alone, and a SIGTERM then
        # drains for WORKER_DRAIN_TIMEOUT (tests/room/test_worker_lifecycle.py)
        session.on("close", lambda ev: ctx.shutdown(reason=f"session closed: {ev.reason}"))
        await session.start(agent=agent, room=ctx.room)
        greet(session, settings.agent_greeting)


def build_server(
    config: Config,
    *,
    health_socket: socket.socket | None = None,
    session_entrypoint: Callable[[JobContext], Awaitable[None]] | None = None,
) -> VoiceAgentServer:
    # `/worker` says which configuration revision new sessions get (and why a saved
    # change was not taken)
    settings = config.settings
    live = worker_live_config()
    server = VoiceAgentServer(
        health_socket=health_socket,
        config_status=live.look,
        configure_logs=lambda: configure_logging(level=settings.log_level, fmt=settings.log_format),
        agent_name=settings.livekit_agent_name,
        ws_url=settings.livekit_url,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret.get_secret_value(),
        max_retry=settings.worker_connect_retries,
        drain_timeout=settings.worker_drain_timeout,
        load_fnc=SessionLoad(config.sessions_per_worker),
        load_threshold=settings.load_threshold,
        prometheus_multiproc_dir=metrics_dir(settings),
        setup_fnc=prewarm,
        # imported once in livekit's forkserver, so each job process starts warm
        preload_modules=["livekit.plugins.silero", "agent.worker.entrypoint"],
    )

    # /metrics beside /live, /ready and /worker on WORKER_PORT
    server.health_routes["/metrics"] = MetricsRoute(live.current)
    server.rtc_session(session_entrypoint or entrypoint, agent_name=settings.livekit_agent_name)
    return server


def _live_config_for_process() -> LiveConfig:
    # job processes are forked from livekit's forkserver, not from our CLI: they read the
    # environment and `.env` again (or the last good file, `agent.worker.reload`) and set
    # up their own logging and redaction
    live = job_live_config()
    config = live.current()
    # livekit's handler ships this process's records to the worker's (ours): keep it
    configure_job_process_logging(level=config.settings.log_level)
    report_rejection(live)
    log.info(
        "job process ready",
        stt=config.backends.stt_backends[0].options.location,
        tts=config.backends.tts_backends[0].options.base_url,
        config_revision=live.status().revision,
    )
    return live
