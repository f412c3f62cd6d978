"""The composition root: every part of the agent is built here, from a resolved `Config`.

The worker, `chat` and `check` call these builders and nothing else assembles parts,
so what runs in a voice session is what runs in text mode. Whoever calls `build_llm`
owns the client it returns and closes it (`aclose`); the engine and the agent only
use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    AgentSession,
    APIConnectOptions,
    llm,
    stt,
    tts,
    vad,
)
from livekit.agents.voice.agent_session import SessionConnectOptions

from agent.config.resolved import Config
from agent.config.settings import Settings
from agent.engine.history import HistoryLimits
from agent.engine.turns import TurnEngine, TurnOptions
from agent.ops.logging import register_secrets
from agent.tools import McpTools, WebhookToolset, builtin_tools
from agent.voice.assistant import Assistant
from agent.voice.pause_stt import listen_on_pauses
from agent.voice.preemptive import SpeechConfirmationGate
from agent.voice.tts_chunks import with_first_clause
from agent.voice.turn_audio import TurnAudio
from agent.voice.turn_detection import turn_handling
from providers import (
    OpenAICompatibleProvider,
    STTOptions,
    build_stt_chain,
    build_tts_chain,
)

# livekit closes a session after this many consecutive unrecoverable STT/LLM/TTS errors
# (default 3). A voice agent whose speech server restarts should outlive the restart, so
# the limit is set out of reach; the STT stream is recreated by livekit after each failure.
_TOLERATED_ERRORS = 1_000_000


# --- the LLM side: shared by voice and chat ------------------------------------------


def build_llm_backends(
    config: Config, *, clock: Callable[[], float] = time.monotonic
) -> list[OpenAICompatibleProvider]:
    """One client per LLM backend, primary first (what `check` probes one by one).
    `clock` times their cool-downs (tests pass their own)."""
    return [
        OpenAICompatibleProvider(options=b.options, preset=b.preset, clock=clock)
        for b in config.backends.llm_backends
    ]


def build_llm(config: Config, *, clock: Callable[[], float] = time.monotonic) -> llm.LLM[Any]:
    """The configured backend, or livekit's `FallbackAdapter` over the primary and
    `LLM_FALLBACKS`: a turn that fails before any word was said moves to the next.
    The caller owns the result and closes it."""
    backends = build_llm_backends(config, clock=clock)
    if len(backends) == 1:
        return backends[0]
    # a backend cooling down is skipped unless every one in the chain is
    cooldowns = [b.cooldown for b in backends if b.cooldown is not None]
    for cooldown in cooldowns:
        cooldown.peers = cooldowns
    return _Fallbacks(
        backends,
        attempt_timeout=config.settings.llm_timeout,
        max_retry_per_llm=config.settings.llm_max_retries,
        retry_interval=0.5,
    )


class _Fallbacks(llm.FallbackAdapter):
    """livekit's adapter, closing the backends it was given when it is closed."""

    def __init__(self, backends: list[OpenAICompatibleProvider], **options: Any) -> None:
        super().__init__(list[llm.LLM[Any]](backends), **options)
        self._backends = backends

    async def aclose(self) -> None:
        await super().aclose()
        for backend in self._backends:
            await backend.aclose()


def build_engine(settings: Settings, turn_llm: llm.LLM[Any]) -> TurnEngine:
    return TurnEngine(
        turn_llm,
        TurnOptions(
            apology=settings.agent_apology,
            fallback_reply=settings.agent_fallback_reply,
            tool_pass=settings.tool_pass_mode,
            max_tool_rounds=settings.max_tool_rounds,
            tool_timeout=settings.tool_timeout,
            filler=settings.tool_filler.strip(),
            filler_delay=settings.tool_filler_delay,
            first_word_deadline=settings.agent_first_word_deadline,
            turn_timeout=settings.agent_turn_timeout,
        ),
        # under preemptive generation, tools with side effects wait for the turn's end
        tool_gate=SpeechConfirmationGate(),
    )


def build_tools(config: Config) -> list[llm.Tool | llm.Toolset]:
    """Built-in tools, webhook tools and MCP servers; toolsets connect in `setup()`."""
    settings = config.settings
    # tool results are redacted before the model reads them: it must know every secret
    register_secrets(config.secrets())
    tools: list[llm.Tool | llm.Toolset] = [*builtin_tools(enabled=settings.builtin_tools)]
    if config.webhooks:
        tools.append(
            WebhookToolset(
                config.webhooks,
                max_result_chars=settings.tool_result_max_chars,
                max_response_bytes=settings.tool_response_max_bytes,
            )
        )
    if config.mcp_servers:
        tools.append(
            McpTools(
                config.mcp_servers,
                # MCP tools yield their name to ours; theirs get a server prefix
                reserved_names=llm.ToolContext(tools).function_tools.keys(),
                connect_timeout=settings.mcp_connect_timeout,
                # a little over the engine's timeout, so that the engine's fires first
                call_timeout=settings.tool_timeout + 5,
                max_result_chars=settings.tool_result_max_chars,
                max_response_bytes=settings.tool_response_max_bytes,
            )
        )
    return tools


def build_history_limits(settings: Settings) -> HistoryLimits:
    return HistoryLimits(
        max_turns=settings.history_max_turns,
        max_tool_result_chars=settings.history_tool_result_max_chars,
    )


# --- the voice side ------------------------------------------------------------------


def build_agent(config: Config, *, turn_llm: llm.LLM[Any]) -> Assistant:
    settings = config.settings
    return Assistant(
        engine=build_engine(settings, turn_llm),
        instructions=settings.instructions,
        tools=build_tools(config),
        history=build_history_limits(settings),
    )


def build_session(
    config: Config,
    *,
    vad: vad.VAD,
    stt_engine: stt.STT[Any] | None = None,
    tts_engine: tts.TTS[Any] | None = None,
    conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
) -> AgentSession[Any]:
    """An `AgentSession` for the speech side. The LLM lives in the `Assistant` (its
    `llm_node` is the turn engine); livekit closes the STT and TTS it is given."""
    backends, settings = config.backends, config.settings
    # several backends: livekit's FallbackAdapters move on when one fails
    stt_chain = stt_engine or build_stt_chain([b.options for b in backends.stt_backends], vad=vad)
    tts_chain = tts_engine or build_tts_chain([b.options for b in backends.tts_backends])
    # transcribed at each pause; the reply's first clause goes to the TTS on its own
    # an end-of-turn model that listens gets the turn's audio from the same VAD stream
    turn_audio = (
        TurnAudio(turn_gap=settings.endpointing_max_delay)
        if settings.turn_detection == "smart-turn"
        else None
    )
    # a server's Whisper hears a segment better behind the one before it; Moonshine in the
    # worker is fast enough to hear the whole turn again at each pause
    server_first = isinstance(backends.stt_backends[0].options, STTOptions)
    stt_in_pauses = listen_on_pauses(
        stt_chain,
        vad,
        enabled=settings.stt_on_pause,
        turn_audio=turn_audio,
        stitch=server_first,
        whole_turn=not server_first,
        turn_gap=settings.endpointing_max_delay,
    )
    return AgentSession(
        vad=vad,
        stt=stt_in_pauses,
        tts=with_first_clause(tts_chain, first_words=settings.tts_first_chunk_words),
        turn_handling=turn_handling(settings, stt_engine=stt_in_pauses),
        conn_options=SessionConnectOptions(
            stt_conn_options=conn_options,
            tts_conn_options=conn_options,
            max_unrecoverable_errors=_TOLERATED_ERRORS,
        ),
    )
