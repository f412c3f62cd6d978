"""Watching a voice session: per-turn latency from livekit's own metrics, and failures.

A session never ends because a backend failed; this observer logs each failure and
tells the user, once per outage, when speech recognition stopped hearing them.
"""

from __future__ import annotations

from typing import Any

from livekit.agents import AgentSession, llm, stt
from livekit.agents.voice import (
    CloseEvent,
    ConversationItemAddedEvent,
    ErrorEvent,
    MetricsCollectedEvent,
    UserInputTranscribedEvent,
)

from agent.engine.turn_stats import ms
from agent.ops.logging import get_logger
from agent.voice.pause_stt import PauseTranscriber

log = get_logger("agent.worker")


class SessionObserver:
    """Per-turn latency logs (from livekit's own metrics) and failure handling.

    Latency comes from `metrics_collected` (EOU: end of speech → transcript and → end of
    turn) and from the metrics livekit attaches to each assistant message (first LLM text,
    first TTS audio, end of speech → first audio), never from our own clocks.
    """

    def __init__(self, session: AgentSession[Any], *, stt_error_reply: str) -> None:
        self._session = session
        self._stt_error_reply = stt_error_reply
        self._eou: dict[str, float | None] = {}
        self._stt_outage_reported = False
        self._pauses = PauseTimings(session.stt)
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
                "eos_to_transcript_ms": ms(m.transcription_delay),
                "eos_to_turn_end_ms": ms(m.end_of_utterance_delay),
            }

    def _on_item(self, ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if not isinstance(item, llm.ChatMessage) or item.role != "assistant":
            return
        m = item.metrics
        ttft, ttfs = m.get("llm_node_ttft"), m.get("llm_node_ttfs")
        latency: dict[str, float | None] = {
            # the user paused -> the last stretch of speech went to the STT
            "pause_to_stt_start_ms": self._pauses.take_ms(),
            "eos_to_transcript_ms": self._eou.get("eos_to_transcript_ms"),
            # the end-of-turn decision (transcript, model or VAD, then endpointing)
            "eos_to_turn_end_ms": self._eou.get("eos_to_turn_end_ms"),
            "llm_ttft_ms": ms(ttft),
            # first text -> the first chunk (first clause) sent to the TTS
            "first_text_to_tts_ms": ms(ttfs - ttft) if ttft and ttfs else None,
            "tts_ttfb_ms": ms(m.get("tts_node_ttfb")),
            "eos_to_first_audio_ms": ms(m.get("e2e_latency")),
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
            if self._stt_error_reply.strip():
                self._session.say(self._stt_error_reply, add_to_chat_ctx=False)

    def _on_close(self, ev: CloseEvent) -> None:
        log.info("session closed", reason=str(ev.reason))


class PauseTimings:
    """For the per-turn latency log: how long after the VAD's end of speech the last
    segment went to the STT (the pause -> STT start stage)."""

    def __init__(self, engine: stt.STT[Any] | None) -> None:
        self._last: float | None = None
        if isinstance(engine, PauseTranscriber):
            engine.on("segment_sent", self._on_sent)

    def _on_sent(self, speech_ended_at: float, sent_at: float) -> None:
        self._last = sent_at - speech_ended_at

    def take_ms(self) -> float | None:
        """The last segment's delay in ms, once: None if none was sent since."""
        last, self._last = self._last, None
        return None if last is None else round(last * 1000, 1)
