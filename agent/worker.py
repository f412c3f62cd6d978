"""The LiveKit worker: an `AgentServer` whose sessions run VAD → STT → turn engine → TTS.

The server process validates the configuration once; each job process (forked by
livekit) loads the silero VAD once in `prewarm` and then serves sessions. A session
never ends because a backend failed: the turn engine apologises for the LLM, the
`SessionObserver` speaks up when speech recognition fails, and the session's error
tolerance is raised so that livekit keeps recreating the STT/TTS streams instead of
closing the room.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    AgentServer,
    AgentSession,
    APIConnectOptions,
    JobContext,
    JobProcess,
    llm,
    stt,
    tts,
    vad,
)
from livekit.agents.utils import http_server
from livekit.agents.voice import (
    CloseEvent,
    ConversationItemAddedEvent,
    ErrorEvent,
    MetricsCollectedEvent,
    UserInputTranscribedEvent,
)
from livekit.agents.voice.agent_session import SessionConnectOptions
from livekit.agents.voice.turn import TurnHandlingOptions

from providers import build_stt_chain, build_tts_chain

from .assistant import Assistant, build_engine, build_history_limits, build_tools
from .config import Settings, load_settings
from .logging import bind_context, configure_logging, get_logger, register_secrets
from .observability import SessionLoad, add_routes, metrics_dir, observe_session, prepare_process

log = get_logger("agent.worker")

# livekit closes a session after this many consecutive unrecoverable STT/LLM/TTS errors
# (default 3). A voice agent whose speech server restarts should outlive the restart, so
# the limit is set out of reach; the STT stream is recreated by livekit after each failure.
_TOLERATED_ERRORS = 1_000_000


# --- the session ------------------------------------------------------------------


def turn_handling(settings: Settings) -> TurnHandlingOptions:
    return {
        # VAD end-of-speech + endpointing delay; no model download, no cloud turn detector
        "turn_detection": "vad",
        # livekit starts llm_node on a guess of the transcript and throws the guess away if
        # the user goes on; our llm_node runs tools, and a tool with side effects (a webhook
        # turning on the lights) must not run for a guess, let alone twice
        "preemptive_generation": {"enabled": False},
        "endpointing": {
            "mode": "fixed",
            "min_delay": settings.endpointing_min_delay,
            "max_delay": settings.endpointing_max_delay,
        },
        "interruption": {
            "enabled": settings.allow_interruptions,
            # "adaptive" needs LiveKit Cloud inference; VAD-based barge-in runs anywhere
            "mode": "vad",
            "min_duration": settings.min_interruption_duration,
        },
    }


def build_session(
    settings: Settings,
    *,
    vad: vad.VAD,
    stt_engine: stt.STT[Any] | None = None,
    tts_engine: tts.TTS[Any] | None = None,
    conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
) -> AgentSession[Any]:
    """An `AgentSession` wired from settings. The LLM lives in the `Assistant` (its
    `llm_node` is the turn engine), so the session only gets the speech side."""
    return AgentSession(
        vad=vad,
        # several backends: livekit's FallbackAdapters move on when one fails
        stt=stt_engine or build_stt_chain(settings.stt_backends(), vad=vad),
        tts=tts_engine or build_tts_chain(settings.tts_backends()),
        turn_handling=turn_handling(settings),
        conn_options=SessionConnectOptions(
            stt_conn_options=conn_options,
            tts_conn_options=conn_options,
            max_unrecoverable_errors=_TOLERATED_ERRORS,
        ),
    )


def build_agent(settings: Settings) -> Assistant:
    return Assistant(
        engine=build_engine(settings),
        instructions=settings.instructions,
        tools=build_tools(settings),
        history=build_history_limits(settings),
    )


class SessionObserver:
    """Per-turn latency logs (from livekit's own metrics) and failure handling.

    Latency comes from `metrics_collected` (EOU: end of speech → transcript and → end of
    turn) and from the metrics livekit attaches to each assistant message (first LLM text,
    first TTS audio, end of speech → first audio), never from our own clocks.
    """

    def __init__(self, session: AgentSession[Any], settings: Settings) -> None:
        self._session = session
        self._settings = settings
        self._eou: dict[str, float | None] = {}
        self._stt_outage_reported = False
        self.turn_latencies: list[dict[str, float | None]] = []
        session.on("metrics_collected", self._on_metrics)
        session.on("conversation_item_added", self._on_item)
        session.on("user_input_transcribed", self._on_transcript)
        session.on("error", self._on_error)
        session.on("close", self._on_close)

    def _on_metrics(self, ev: MetricsCollectedEvent) -> None:
        m = ev.metrics
        if m.type == "eou_metrics":
            self._eou = {
                "eos_to_transcript_ms": _ms(m.transcription_delay),
                "eos_to_turn_end_ms": _ms(m.end_of_utterance_delay),
            }

    def _on_item(self, ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if not isinstance(item, llm.ChatMessage) or item.role != "assistant":
            return
        m = item.metrics
        latency: dict[str, float | None] = {
            "eos_to_transcript_ms": self._eou.get("eos_to_transcript_ms"),
            "eos_to_turn_end_ms": self._eou.get("eos_to_turn_end_ms"),
            "llm_ttft_ms": _ms(m.get("llm_node_ttft")),
            "tts_ttfb_ms": _ms(m.get("tts_node_ttfb")),
            "eos_to_first_audio_ms": _ms(m.get("e2e_latency")),
        }
        self._eou = {}
        self.turn_latencies.append(latency)
        # a greeting or a typed turn has no end of speech: log what there is
        log.info(
            "turn latency",
            interrupted=item.interrupted,
            **{k: v for k, v in latency.items() if v is not None},
        )

    def _on_transcript(self, ev: UserInputTranscribedEvent) -> None:
        if ev.is_final and ev.transcript.strip():
            self._stt_outage_reported = False

    def _on_error(self, ev: ErrorEvent) -> None:
        err = ev.error
        kind = getattr(err, "type", "error")
        recoverable = bool(getattr(err, "recoverable", False))
        log.warning(
            "backend error",
            kind=kind,
            recoverable=recoverable,
            error=str(getattr(err, "error", err)),
            model=getattr(ev.source, "model", None),
        )
        # tell the user once per outage that we can't hear them; a TTS outage can't be
        # spoken about (the reply text still reaches the room's transcription)
        if kind == "stt_error" and not recoverable and not self._stt_outage_reported:
            self._stt_outage_reported = True
            reply = self._settings.agent_stt_error_reply
            if reply.strip():
                self._session.say(reply, add_to_chat_ctx=False)

    def _on_close(self, ev: CloseEvent) -> None:
        log.info("session closed", reason=str(ev.reason))


def greet(session: AgentSession[Any], settings: Settings) -> None:
    """Say the configured greeting (a fixed line: no LLM round trip before the first word)."""
    if settings.agent_greeting.strip():
        session.say(settings.agent_greeting, allow_interruptions=True)


# --- the worker ---------------------------------------------------------------------


def prewarm(proc: JobProcess) -> None:
    """Runs once per job process, before it takes sessions."""
    settings = _settings_for_process()
    from livekit.plugins import silero

    # the ONNX model ships inside the plugin wheel: nothing is downloaded here
    proc.userdata["vad"] = silero.VAD.load()
    proc.userdata["settings"] = settings
    prepare_process(settings)


async def entrypoint(ctx: JobContext) -> None:
    settings: Settings = ctx.proc.userdata.get("settings") or _settings_for_process()
    vad_model = ctx.proc.userdata.get("vad")
    if vad_model is None:  # prewarm skipped (e.g. a thread executor): load it now
        from livekit.plugins import silero

        vad_model = silero.VAD.load()
    with bind_context(session_id=uuid.uuid4().hex[:12], room=ctx.room.name):
        session = build_session(settings, vad=vad_model)
        SessionObserver(session, settings)
        log.info(
            "session starting",
            stt=settings.stt_options().base_url,
            tts=settings.tts_options().base_url,
        )
        agent = build_agent(settings)
        observe_session(
            session,
            agent.engine,
            settings=settings,
            add_shutdown_callback=ctx.add_shutdown_callback,
        )
        # livekit closes the session's speech clients, not the LLM client our engine holds
        ctx.add_shutdown_callback(agent.engine.provider.aclose)
        await session.start(agent=agent, room=ctx.room)
        greet(session, settings)


class VoiceAgentServer(AgentServer):
    """An `AgentServer` that remembers why `run()` failed.

    livekit's CLI logs a failed `run()` (e.g. LiveKit unreachable after all retries) and
    exits 0; the `voice-agent` command reads `failure` and exits non-zero instead, so a
    container supervisor restarts the worker.
    """

    failure: BaseException | None = None

    # livekit builds its HTTP server (`/`, `/worker`) inside `run()` and starts it right
    # away; our routes join it when it is handed over, before it starts
    @property
    def _http_server(self) -> http_server.HttpServer | None:
        return self.__http_server

    @_http_server.setter
    def _http_server(self, server: http_server.HttpServer | None) -> None:
        if server is not None:
            add_routes(server)
        self.__http_server = server

    async def run(self, *, devmode: bool = False, unregistered: bool = False) -> None:
        try:
            await super().run(devmode=devmode, unregistered=unregistered)
        except Exception as e:
            self.failure = e
            raise


def build_server(
    settings: Settings,
    *,
    session_entrypoint: Callable[[JobContext], Awaitable[None]] = entrypoint,
) -> VoiceAgentServer:
    server = VoiceAgentServer(
        ws_url=settings.livekit_url,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret.get_secret_value(),
        port=settings.worker_port,
        max_retry=settings.worker_connect_retries,
        drain_timeout=settings.worker_drain_timeout,
        load_fnc=SessionLoad(settings.max_sessions),
        load_threshold=settings.load_threshold,
        prometheus_multiproc_dir=metrics_dir(settings),
        setup_fnc=prewarm,
        # imported once in livekit's forkserver, so each job process starts warm
        preload_modules=["livekit.plugins.silero", "agent.worker"],
    )

    @server.once("worker_started")
    def _restore_logging() -> None:
        # livekit's CLI adds its own (unredacted) stdout handler; ours replaces it
        configure_logging(level=settings.log_level, fmt=settings.log_format)

    server.rtc_session(session_entrypoint, agent_name=settings.livekit_agent_name)
    return server


def _settings_for_process() -> Settings:
    # job processes are forked from livekit's forkserver, not from our CLI: they read the
    # (already validated) environment again and set up their own logging and redaction
    settings = load_settings()
    register_secrets(settings.secrets())
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    return settings


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)
