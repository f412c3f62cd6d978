"""Section 5: the voice path, spoken turn by spoken turn, and the worker's memory.

Real parts throughout, as in the audio e2e test (`tests/voice/test_session_audio.py`):
questions spoken by espeak-ng and played in real time (20 ms frames) into the worker's own
session (`agent.worker.entrypoint.build_session`), the real silero VAD, the real Whisper server
(faster-whisper-server, tiny.en, offline), the scripted LLM server (in its own process, as
in sections 1-4) and the espeak-ng TTS server. The session runs in a child process
(`bench/voice_session.py`) that plays the job process, so its memory is a job process's
alone and the speech servers do not share its GIL.

Every latency is livekit's own number where livekit has one: `metrics_collected`
(EOUMetrics, STTMetrics, LLMMetrics) and the metrics livekit attaches to each chat
message (`stopped_speaking_at`, `llm_node_ttft`, `llm_node_ttfs`, `tts_node_ttfb`,
`e2e_latency`). Two are wall clocks (`time.time()`, one clock across processes): when
livekit emitted the user's "stopped speaking" state (it back-dates the event itself), and
when the TTS server received the request.
"""

from __future__ import annotations

import array
import json
import math
import os
import shutil
import tempfile
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livekit.agents.utils.hw import get_cpu_monitor

from testing.audio_io import espeak_to_wav
from testing.cli import VOICE_AGENT
from testing.polling import free_port
from testing.servers.openai_server import text_reply
from testing.servers.tts_server import EspeakTTSServer
from testing.servers.whisper_server import WhisperServer

from .common import ROOT, Summary, run_module
from .memory import ProcessMemory, idle_worker
from .server_proc import RemoteLLMServer
from .voice_session import GREETING

QUESTIONS = (
    "What time is it in Tokyo?",
    "How is the weather in Paris today?",
    "Please set a timer for ten minutes.",
    "Who wrote the novel Moby Dick?",
    "What is the capital of Australia?",
    "How far away is the moon?",
)
# two sentences, as a voice reply usually is: the first goes to the TTS on its own
REPLY = "It is nine in the evening there right now. Is there anything else you would like to know?"
PAD_SECONDS = 0.3
"""Silence espeak_to_wav puts around each question (Whisper needs a little lead-in)."""
SPEECH_LEVEL = 300
"""A sample louder than this (of 32768) is speech; espeak's own trailing silence is zeros."""


def speech_tail_seconds(wav: Path) -> float:
    """How long the WAV goes on after its last speech sample (padding + espeak's silence)."""
    with wave.open(str(wav), "rb") as w:
        samples = array.array("h", w.readframes(w.getnframes()))
        rate = w.getframerate()
    last = max((i for i, v in enumerate(samples) if abs(v) > SPEECH_LEVEL), default=0)
    return (len(samples) - last) / rate


@dataclass(frozen=True, slots=True)
class VoicePlan:
    turns: int
    warmup: int
    ttft: float
    token_delay: float
    idle_worker: bool = True
    """Also start `voice-agent start` to measure an idle worker's memory (about 10 s)."""
    pause: float = 0.5


@dataclass(frozen=True, slots=True)
class VoiceRow:
    stage: str
    source: str
    values_ms: list[float]
    key: str = ""


@dataclass(frozen=True, slots=True)
class MemoryRow:
    what: str
    rss_mb: float
    pss_mb: float | None
    note: str = ""


@dataclass
class VoiceResult:
    plan: VoicePlan
    rows: list[VoiceRow] = field(default_factory=list)
    memory: list[MemoryRow] = field(default_factory=list)
    heard: list[str] = field(default_factory=list)
    anchor_offset_ms: list[float] = field(default_factory=list)
    """livekit's end-of-speech estimate - the real end of the WAV's speech."""
    vad_silence_s: float = 0.0
    endpointing_s: tuple[float, float] = (0.0, 0.0)
    wall_s: float = 0.0
    skipped: str | None = None
    side_by_side: Any = None
    """`bench.voice_latency.LatencyResult`: ours vs livekit's default pipeline."""

    def p50(self, key: str) -> float:
        """The median of one stage by its key (nan when it has no samples)."""
        row = next((r for r in self.rows if r.key == key), None)
        return Summary.of(row.values_ms if row else []).p50


def measure(server: RemoteLLMServer, plan: VoicePlan) -> VoiceResult:
    started = time.perf_counter()
    result = _measure(server, plan)
    result.wall_s = time.perf_counter() - started
    return result


def _measure(server: RemoteLLMServer, plan: VoicePlan) -> VoiceResult:
    if plan.turns <= 0:
        return VoiceResult(
            plan,
            skipped="no spoken turns asked for (`--quick` skips this section: one spoken "
            "turn adds about 25 s; `--quick --voice-turns 1` runs one)",
        )
    if shutil.which("espeak-ng") is None:
        return VoiceResult(plan, skipped="espeak-ng is not installed (apt-get install espeak-ng)")
    from agent.config.settings import Settings
    from agent.voice.turn_detection import vad_min_silence

    result = VoiceResult(plan)
    # the worker's prewarm loads the VAD with the window its turn detection needs
    result.vad_silence_s = vad_min_silence(Settings.model_construct())
    defaults = Settings.model_fields
    result.endpointing_s = (
        float(defaults["endpointing_min_delay"].default),
        float(defaults["endpointing_max_delay"].default),
    )
    n = plan.warmup + plan.turns
    server.reset()
    server.script(
        *[text_reply(REPLY, ttft=plan.ttft, token_delay=plan.token_delay) for _ in range(n)]
    )
    with tempfile.TemporaryDirectory(prefix="bench-voice-") as tmp:
        wavs = [
            espeak_to_wav(q, Path(tmp) / f"q{i}.wav", pad_seconds=PAD_SECONDS)
            for i, q in enumerate(QUESTIONS)
        ]
        said = [wavs[k % len(wavs)] for k in range(n)]
        tails = [speech_tail_seconds(w) for w in said]
        whisper = WhisperServer().start()  # warmed up: its model is loaded
        try:
            with EspeakTTSServer() as tts:
                data = _run_session(
                    server,
                    whisper.base_url,
                    tts.base_url,
                    said,
                    Path(tmp) / "session.json",
                    plan.pause,
                )
                tts_requests = [(r.text, r.received_at) for r in tts.requests]
        finally:
            whisper.stop()
    llm_ttft = [r.ttft * 1000 for r in server.requests() if r.ttft is not None]
    _fill(result, data, tts_requests, llm_ttft[plan.warmup :], tails)
    result.memory += _session_memory(data, plan.warmup)
    if plan.idle_worker:
        # livekit's own default in production (`start`): one idle job process per CPU
        idle = math.ceil(get_cpu_monitor().cpu_count())
        result.memory += _idle_worker_memory(server.base_url, idle)
    return result


def _run_session(
    server: RemoteLLMServer,
    stt_url: str,
    tts_url: str,
    wavs: list[Path],
    out: Path,
    pause: float,
) -> dict[str, Any]:
    proc = run_module(
        "bench.voice_session",
        f"--llm-url={server.base_url}",
        f"--stt-url={stt_url}",
        f"--tts-url={tts_url}",
        f"--pause={pause}",
        f"--out={out}",
        *map(str, wavs),
        timeout=60 + 30 * len(wavs),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the voice session failed: {proc.stderr[-3000:]}")
    data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return data


def _first(
    items: Sequence[tuple[int, dict[str, Any]]], turn: int, kind: str
) -> dict[str, Any] | None:
    return next((m for t, m in items if t == turn and m.get("type") == kind), None)


def _fill(
    result: VoiceResult,
    data: dict[str, Any],
    tts_requests: list[tuple[str, float]],
    server_ttft_ms: list[float],
    tails: list[float],
) -> None:
    metrics = [(int(t), m) for t, m in data["metrics"]]
    messages = [(int(t), role, text, m) for t, role, text, m in data["messages"]]
    series: dict[str, list[float]] = {}

    def add(key: str, value: float | None) -> None:
        if value is not None and value >= 0:
            series.setdefault(key, []).append(value * 1000)

    for k in range(result.plan.warmup, result.plan.warmup + result.plan.turns):
        user = next((m for t, r, _, m in messages if t == k and r == "user"), None)
        reply = next((m for t, r, _, m in messages if t == k and r == "assistant"), None)
        result.heard += [text for t, r, text, _ in messages if t == k and r == "user"]
        eou, stt_m, llm_m = (
            _first(metrics, k, kind) for kind in ("eou_metrics", "stt_metrics", "llm_metrics")
        )
        eos = (user or {}).get("stopped_speaking_at")
        if eou is not None:
            add("eos_turn", eou["end_of_utterance_delay"])
            add("eos_transcript", eou["transcription_delay"])
            add("transcript_turn", eou["end_of_utterance_delay"] - eou["transcription_delay"])
        if stt_m is not None:
            add("stt_request", stt_m["duration"])
        if llm_m is not None:
            add("llm_ttft", llm_m["ttft"])
        if reply is not None:
            ttft, ttfs = reply.get("llm_node_ttft"), reply.get("llm_node_ttfs")
            add("node_ttft", ttft)
            if ttft is not None and ttfs is not None:
                add("text_tts", ttfs - ttft)
            add("tts_ttfb", reply.get("tts_node_ttfb"))
            add("e2e", reply.get("e2e_latency"))
        if eos is None:
            continue
        seen = data["vad_end_seen_at"].get(str(k))
        if seen is not None:
            add("eos_vad", seen - eos)
        request_at = next((at for text, at in tts_requests if at > eos and text != GREETING), None)
        if request_at is not None:
            add("eos_tts", request_at - eos)
        # the WAV's last speech sample went out `tails[k]` before its last frame did
        result.anchor_offset_ms.append((eos - (data["mic_speech_end"][k] - tails[k])) * 1000)

    def row(stage: str, source: str, key: str) -> VoiceRow:
        return VoiceRow(stage, source, series.get(key, []), key)

    result.rows = [
        row(
            "end of speech -> VAD reports it (silero silence window)",
            "wall clock when livekit emits `user_state_changed` -> listening, minus the "
            "end of speech it back-dates the event to",
            "eos_vad",
        ),
        row(
            "end of speech -> final transcript (VAD end + Whisper request)",
            "EOUMetrics.transcription_delay",
            "eos_transcript",
        ),
        row("of which: the Whisper request", "STTMetrics.duration", "stt_request"),
        row(
            "end of speech -> end of turn (VAD + endpointing)",
            "EOUMetrics.end_of_utterance_delay",
            "eos_turn",
        ),
        row(
            "final transcript -> end of turn",
            "end_of_utterance_delay - transcription_delay",
            "transcript_turn",
        ),
        row("LLM request -> first token (client)", "LLMMetrics.ttft", "llm_ttft"),
        VoiceRow(
            "LLM request -> first token (server's own record)",
            "scripted server, as in section 1",
            server_ttft_ms,
            "server_ttft",
        ),
        row("llm_node start -> first text (our engine)", "`llm_node_ttft`", "node_ttft"),
        row(
            "first text -> first TTS request (sentence tokenizer)",
            "`llm_node_ttfs` - `llm_node_ttft`",
            "text_tts",
        ),
        row("TTS request -> first audio byte", "`tts_node_ttfb`", "tts_ttfb"),
        row(
            "end of speech -> first TTS request (total)",
            "wall clock: TTS server's arrival time - `stopped_speaking_at`",
            "eos_tts",
        ),
        row(
            "end of speech -> agent starts speaking",
            "`e2e_latency`",
            "e2e",
        ),
    ]


def _session_memory(data: dict[str, Any], warmup: int) -> list[MemoryRow]:
    after: list[int] = data["rss_after_turn"]
    rows = [
        MemoryRow(
            "session process, prewarmed (worker imported, VAD loaded), before the session",
            data["rss_prewarmed"] / 2**20,
            None,
        )
    ]
    if after:
        rows.append(
            MemoryRow(
                "session process after its first spoken turn",
                after[min(warmup, len(after) - 1)] / 2**20,
                None,
            )
        )
        rows.append(
            MemoryRow(f"session process after {len(after)} spoken turns", after[-1] / 2**20, None)
        )
    return rows


def _idle_worker_memory(llm_url: str, idle_processes: int) -> list[MemoryRow]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LLM_", "LIVEKIT_", "WORKER_", "STT_", "TTS_"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        LLM_BASE_URL=llm_url,
        LLM_MODEL="test-model",
        # nothing listens there: the worker keeps retrying, idle, for minutes
        LIVEKIT_URL=f"ws://127.0.0.1:{free_port()}",
        WORKER_CONNECT_RETRIES="1000",
        WORKER_PORT="0",
        LOG_FORMAT="json",
    )
    procs: list[ProcessMemory] = idle_worker(
        env,
        command=[VOICE_AGENT, "start"],
        cwd=ROOT,
        idle_processes=idle_processes,
        timeout=90,
    )
    rows = [MemoryRow(f"idle worker: {p.role}", p.rss_mb, p.pss_mb) for p in procs]
    rows.append(
        MemoryRow(
            "idle worker: whole process tree",
            sum(p.rss_mb for p in procs),
            sum(p.pss_mb for p in procs),
            "RSS summed counts shared pages once per process; PSS does not",
        )
    )
    return rows
