"""The voice path measured spoken turn by spoken turn, and the worker's memory.

Real parts throughout, as in the audio e2e test (`tests/voice/test_session_audio.py`):
questions spoken by espeak-ng and played in real time into the worker's own session, the
real silero VAD, the real Whisper server, the run's scripted LLM server and the espeak-ng
TTS server (`bench/voice_session.py`). The session runs in a child process that plays the
job process, so its memory is a job process's alone and the speech servers do not share
its GIL. Then the idle worker's memory (`bench/memory.py`), and the side by side with
livekit's default pipeline (`bench/voice_latency.py`).

Every latency is livekit's own number where livekit has one: `metrics_collected`
(EOUMetrics, STTMetrics, LLMMetrics) and the metrics livekit attaches to each chat
message (`stopped_speaking_at`, `llm_node_ttft`, `llm_node_ttfs`, `tts_node_ttfb`,
`e2e_latency`). Two are wall clocks (`time.time()`, one clock across processes): when
livekit emitted the user's "stopped speaking" state (it back-dates the event itself), and
when the TTS server received the request.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from livekit.agents.utils.hw import get_cpu_monitor

from testing.cli import VOICE_AGENT
from testing.polling import free_port
from testing.servers.openai_server import text_reply

from . import voice_latency
from .common import ROOT
from .memory import idle_worker
from .plan import VoicePlan
from .sections import p50
from .server_proc import RemoteLLMServer
from .voice_latency import REPLY
from .voice_session import Spoken, first, speak

QUESTIONS = (
    "What time is it in Tokyo?",
    "How is the weather in Paris today?",
    "Please set a timer for ten minutes.",
    "Who wrote the novel Moby Dick?",
    "What is the capital of Australia?",
    "How far away is the moon?",
)
GREETING = "Hello, ask me anything."

STAGES = (  # key in results.json, stage, where the number comes from
    (
        "eos_vad",
        "end of speech -> VAD reports it (silero silence window)",
        "wall clock when livekit emits `user_state_changed` -> listening, minus the end of "
        "speech it back-dates the event to",
    ),
    (
        "eos_transcript",
        "end of speech -> final transcript (VAD end + Whisper request)",
        "EOUMetrics.transcription_delay",
    ),
    ("stt_request", "of which: the Whisper request", "STTMetrics.duration"),
    (
        "eos_turn",
        "end of speech -> end of turn (VAD + endpointing)",
        "EOUMetrics.end_of_utterance_delay",
    ),
    (
        "transcript_turn",
        "final transcript -> end of turn",
        "end_of_utterance_delay - transcription_delay",
    ),
    ("llm_ttft", "LLM request -> first token (client)", "LLMMetrics.ttft"),
    (
        "server_ttft",
        "LLM request -> first token (server's own record)",
        "scripted server, as in section 1",
    ),
    ("node_ttft", "llm_node start -> first text (our engine)", "`llm_node_ttft`"),
    (
        "text_tts",
        "first text -> first TTS request (sentence tokenizer)",
        "`llm_node_ttfs` - `llm_node_ttft`",
    ),
    ("tts_ttfb", "TTS request -> first audio byte", "`tts_node_ttfb`"),
    (
        "eos_tts",
        "end of speech -> first TTS request (total)",
        "wall clock: TTS server's arrival time - `stopped_speaking_at`",
    ),
    ("e2e", "end of speech -> agent starts speaking", "`e2e_latency`"),
)


@dataclass(frozen=True, slots=True)
class MemoryRow:
    what: str
    rss_mb: float
    pss_mb: float | None


@dataclass
class VoiceResult:
    plan: VoicePlan
    stages_ms: dict[str, list[float]] = field(default_factory=dict)
    memory: list[MemoryRow] = field(default_factory=list)
    heard: list[str] = field(default_factory=list)
    anchor_offset_ms: list[float] = field(default_factory=list)
    """livekit's end-of-speech estimate - the real end of the WAV's speech."""
    vad_silence_s: float = 0.0
    endpointing_s: tuple[float, float] = (0.0, 0.0)
    wall_s: float = 0.0
    skipped: str | None = None
    no_tool_ratio: float | None = None
    """The no-tool section's `llm_node` ratio for our default, where it ran before."""
    side_by_side: voice_latency.LatencyResult | None = None

    def p50(self, key: str) -> float:
        """The median of one stage by its key (nan when it has no samples)."""
        return p50(self.stages_ms.get(key, []))


def measure(server: RemoteLLMServer, plan: VoicePlan) -> VoiceResult:
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
    reply = text_reply(REPLY, ttft=plan.ttft, token_delay=plan.token_delay)
    server.script(*[reply] * n)
    spoken = speak(
        server.base_url, QUESTIONS, n, pipelines=["ours"], pause=plan.pause, greeting=GREETING
    )
    if spoken.data["missing"]:
        raise RuntimeError(f"spoken turns went unanswered: {spoken.data['missing']}")
    server_ttft = [r.ttft * 1000 for r in server.requests() if r.ttft is not None]
    _fill(result, spoken, server_ttft[plan.warmup :])
    after = spoken.data["ours"]["rss_mb_after_turn"]
    result.memory = [
        MemoryRow(
            "session process, prewarmed (worker imported, VAD loaded), before the session",
            spoken.data["rss_mb_prewarmed"],
            None,
        ),
        MemoryRow("session process after its first spoken turn", after[plan.warmup], None),
        MemoryRow(f"session process after {len(after)} spoken turns", after[-1], None),
    ]
    if plan.idle_worker:
        # livekit's own default in production (`start`): one idle job process per CPU
        idle = math.ceil(get_cpu_monitor().cpu_count())
        result.memory += _idle_worker_memory(server.base_url, idle)
    return result


def _fill(result: VoiceResult, spoken: Spoken, server_ttft_ms: list[float]) -> None:
    """Each stage's latency per measured turn, from what the session reported."""
    record = spoken.data["ours"]
    items, metrics = record["items"], record["metrics"]
    series = result.stages_ms = {key: [] for key, _, _ in STAGES}
    series["server_ttft"] = server_ttft_ms

    def add(key: str, value: float | None) -> None:
        if value is not None and value >= 0:
            series[key].append(value * 1000)

    for k in range(result.plan.warmup, result.plan.warmup + result.plan.turns):
        result.heard += [i["text"] for i in items if i["turn"] == k and i["role"] == "user"]
        eou = first(metrics, k, type="eou_metrics")
        if eou is not None:
            add("eos_turn", eou["end_of_utterance_delay"])
            add("eos_transcript", eou["transcription_delay"])
            add("transcript_turn", eou["end_of_utterance_delay"] - eou["transcription_delay"])
        if (stt := first(metrics, k, type="stt_metrics")) is not None:
            add("stt_request", stt["duration"])
        if (llm := first(metrics, k, type="llm_metrics")) is not None:
            add("llm_ttft", llm["ttft"])
        if (reply := first(items, k, role="assistant")) is not None:
            m = reply["metrics"]
            ttft, ttfs = m.get("llm_node_ttft"), m.get("llm_node_ttfs")
            add("node_ttft", ttft)
            add("text_tts", ttfs - ttft if ttft is not None and ttfs is not None else None)
            add("tts_ttfb", m.get("tts_node_ttfb"))
            add("e2e", m.get("e2e_latency"))
        user = first(items, k, role="user")
        if user is None or (eos := user["metrics"].get("stopped_speaking_at")) is None:
            continue
        if (seen := first(record["user_states"], k, state="listening")) is not None:
            add("eos_vad", seen["at"] - eos)
        tts = (at for text, at in spoken.tts_requests if at > eos and text != GREETING)
        add("eos_tts", None if (request_at := next(tts, None)) is None else request_at - eos)
        # the WAV's last speech sample went out `tails[k]` before its last frame did
        speech_end = record["mic_end"][str(k)] - spoken.tails[k]
        result.anchor_offset_ms.append((eos - speech_end) * 1000)


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
    procs = idle_worker(
        env, command=[VOICE_AGENT, "start"], cwd=ROOT, idle_processes=idle_processes, timeout=90
    )
    rows = [MemoryRow(f"idle worker: {p.role}", p.rss_mb, p.pss_mb) for p in procs]
    # RSS summed counts shared pages once per process; PSS does not
    tree = sum(p.rss_mb for p in procs), sum(p.pss_mb for p in procs)
    return [*rows, MemoryRow("idle worker: whole process tree", *tree)]
