"""Section: spoken turns through the worker's session, stage by stage, and its memory."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from testing.servers.openai_server import text_reply

from . import memory, no_tool, voice_latency
from .sections import Context, VoicePlan, p50, p50_p95, summary, table
from .voice_session import SPEECH_LEVEL, STT_NAMES, Spoken, espeak_missing, first, speak

NAME = "voice"
TITLE = "Voice path: spoken turns through the worker's session"
QUESTIONS = (
    "What time is it in Tokyo?",
    "How is the weather in Paris today?",
    "Please set a timer for ten minutes.",
    "Who wrote the novel Moby Dick?",
    "What is the capital of Australia?",
    "How far away is the moon?",
)
GREETING = "Hello, ask me anything."
EOS = "end of speech ->"
STAGES = {  # key in results.json: (stage, where the number comes from)
    "eos_vad": (
        f"{EOS} VAD reports it (silero silence window)",
        "wall clock when livekit emits `user_state_changed` -> listening, minus the end of "
        "speech it back-dates the event to",
    ),
    "eos_transcript": (
        f"{EOS} final transcript (VAD end + STT request)",
        "EOUMetrics.transcription_delay",
    ),
    "stt_request": ("of which: the STT request", "STTMetrics.duration"),
    "eos_turn": (f"{EOS} end of turn (VAD + endpointing)", "EOUMetrics.end_of_utterance_delay"),
    "transcript_turn": (
        "final transcript -> end of turn",
        "end_of_utterance_delay - transcription_delay",
    ),
    "llm_ttft": ("LLM request -> first token (client)", "LLMMetrics.ttft"),
    "server_ttft": (
        "LLM request -> first token (server's own record)",
        "scripted server, as in section 1",
    ),
    "node_ttft": ("llm_node start -> first text (our engine)", "`llm_node_ttft`"),
    "text_tts": (
        "first text -> first TTS request (sentence tokenizer)",
        "`llm_node_ttfs` - `llm_node_ttft`",
    ),
    "tts_ttfb": ("TTS request -> first audio byte", "`tts_node_ttfb`"),
    "eos_tts": (
        f"{EOS} first TTS request (total)",
        "wall clock: TTS server's arrival time - `stopped_speaking_at`",
    ),
    "e2e": (f"{EOS} agent starts speaking", "`e2e_latency`"),
}


@dataclass
class VoiceResult:
    plan: VoicePlan
    skipped: str | None = None
    stages_ms: dict[str, list[float]] = field(default_factory=dict)
    memory: list[memory.Row] = field(default_factory=list)
    heard: list[str] = field(default_factory=list)
    anchor_offset_ms: list[float] = field(default_factory=list)
    """livekit's end-of-speech estimate - the real end of the WAV's speech."""
    vad_silence_s: float = 0.0
    endpointing_s: tuple[float, float] = (0.0, 0.0)
    wall_s: float = 0.0
    no_tool_ratio: float | None = None
    """The no-tool section's `llm_node` ratio for our default, where it ran before."""
    side_by_side: voice_latency.LatencyResult | None = None

    def p50(self, key: str) -> float:
        return p50(self.stages_ms[key])


def run(ctx: Context) -> VoiceResult:
    started, plan = time.perf_counter(), ctx.plan.voice
    if plan.turns <= 0:
        return VoiceResult(
            plan,
            "no spoken turns asked for (`--quick` skips this section: one spoken turn adds "
            "about 25 s; `--quick --voice-turns 1` runs one)",
        )
    if (missing := espeak_missing()) is not None:
        return VoiceResult(plan, missing)
    from agent.config.settings import Settings
    from agent.voice.turn_detection import vad_min_silence

    defaults = Settings.model_fields
    result = VoiceResult(
        plan,
        # the worker's prewarm loads the VAD with the window its turn detection needs
        vad_silence_s=vad_min_silence(Settings.model_construct()),
        endpointing_s=(
            float(defaults["endpointing_min_delay"].default),
            float(defaults["endpointing_max_delay"].default),
        ),
    )
    n = plan.warmup + plan.turns
    reply = text_reply(voice_latency.REPLY, ttft=plan.ttft, token_delay=plan.token_delay)
    ctx.server.script(*[reply] * n)
    spoken = speak(
        ctx.server.base_url,
        QUESTIONS,
        n,
        pipelines=["ours"],
        pause=plan.pause,
        greeting=GREETING,
        stt=plan.stt,
    )
    if spoken.data["missing"]:
        raise RuntimeError(f"spoken turns went unanswered: {spoken.data['missing']}")
    server_ttft = [r.ttft * 1000 for r in ctx.server.requests() if r.ttft is not None]
    _stages(result, spoken, server_ttft[plan.warmup :])
    after = spoken.data["ours"]["rss_mb_after_turn"]
    session = "session process, prewarmed (worker imported, VAD loaded), before the session"
    result.memory = [
        (session, spoken.data["rss_mb_prewarmed"], None),
        ("session process after its first spoken turn", after[plan.warmup], None),
        (f"session process after {len(after)} spoken turns", after[-1], None),
    ]
    if plan.idle_worker:
        result.memory += memory.idle_worker(ctx.server.base_url)
    result.wall_s = time.perf_counter() - started
    if rows := ctx.results.get(no_tool.NAME):
        ours = no_tool.ours(rows, "llm_node")
        result.no_tool_ratio = None if ours is None else p50(ours.series["ratio"])
    result.side_by_side = voice_latency.run(plan)
    return result


def _stages(result: VoiceResult, spoken: Spoken, server_ttft_ms: list[float]) -> None:
    """Each stage's latency per measured turn, from what the session reported."""
    log = spoken.data["ours"]
    items, metrics = log["items"], log["metrics"]
    series = result.stages_ms = {key: [] for key in STAGES}
    series["server_ttft"] = server_ttft_ms

    def add(key: str, value: float | None) -> None:
        if value is not None and value >= 0:
            series[key].append(value * 1000)

    for k in range(result.plan.warmup, result.plan.warmup + result.plan.turns):
        result.heard += [i["text"] for i in items if i["turn"] == k and i["role"] == "user"]
        if (eou := first(metrics, k, type="eou_metrics")) is not None:
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
        if (seen := first(log["user_states"], k, state="listening")) is not None:
            add("eos_vad", seen["at"] - eos)
        tts = (at for text, at in spoken.tts_requests if at > eos and text != GREETING)
        add("eos_tts", None if (request_at := next(tts, None)) is None else request_at - eos)
        # the WAV's last speech sample went out `tails[k]` before its last frame did
        speech_end = log["mic_end"][str(k)] - spoken.tails[k]
        result.anchor_offset_ms.append((eos - speech_end) * 1000)


def render(v: VoiceResult) -> list[str]:
    if v.skipped is not None:
        return [f"Skipped: {v.skipped}."]
    p, (min_delay, max_delay) = v.plan, v.endpointing_s
    blocks = [
        f"{p.turns} spoken turns (after {p.warmup} for warm-up), STT {STT_NAMES[p.stt]}, "
        f"VAD silence {v.vad_silence_s * 1000:.0f} ms, endpointing {min_delay * 1000:.0f}-"
        f"{max_delay * 1000:.0f} ms, scripted LLM (first token {p.ttft * 1000:.0f} ms, "
        f"{p.token_delay * 1000:.0f} ms between words). Method: docs/benchmarks.md#voice.",
        table(
            "stage | source | p50 ms | p95 ms | turns",
            [
                [stage, source, *p50_p95(v.stages_ms[key]), len(v.stages_ms[key])]
                for key, (stage, source) in STAGES.items()
            ],
        ),
    ]
    if v.anchor_offset_ms:
        blocks.append(
            "livekit's end of speech vs the real one (the WAV's last sample louder than "
            f"{SPEECH_LEVEL}/32768, as the microphone delivered it): p50 "
            f"{p50(v.anchor_offset_ms):+.0f} ms (positive: every 'end of speech ->' row "
            "above is that much shorter than what the user waits)."
        )
    blocks += _limits(v) + _memory(v)
    if v.side_by_side is not None:
        blocks += [voice_latency.HEADING, *voice_latency.render(v.side_by_side)]
    return blocks


def _limits(v: VoiceResult) -> list[str]:
    """Where the time goes, and how our engine compares with the no-tool section."""
    blocks = [
        f"What limits it (p50s, docs/benchmarks.md#voice): VAD {v.p50('eos_vad'):.0f} ms, "
        f"STT {v.p50('stt_request'):.0f} ms, turn end {v.p50('transcript_turn'):.1f} ms after "
        f"the transcript, LLM {v.p50('server_ttft'):.0f} ms, first sentence "
        f"{v.p50('text_tts'):.0f} ms, TTS {v.p50('tts_ttfb'):.0f} ms."
    ]
    if v.stages_ms["node_ttft"] and v.stages_ms["server_ttft"]:
        ratio, section1 = v.p50("node_ttft") / v.p50("server_ttft"), v.no_tool_ratio
        blocks.append(
            "Our engine in the voice session: first text out of `llm_node` / the server's "
            f"TTFT, p50 {ratio:.3f}"
            + (f" (the no-tool section, `llm_node` level: {section1:.3f})" if section1 else "")
            + "."
        )
    if v.heard:
        more = "; ..." if len(v.heard) > 6 else ""
        heard = "; ".join(f'"{h}"' for h in v.heard[:6])
        blocks.append(f"What the STT heard (the LLM got these as the user's turns): {heard}{more}")
    return blocks


def _memory(v: VoiceResult) -> list[str]:
    session = [rss for what, rss, _ in v.memory if what.startswith("session process")]
    rows = [
        [what, f"{rss:.1f}", "" if pss is None else f"{pss:.1f}"] for what, rss, pss in v.memory
    ]
    return [
        "Memory (RSS, and PSS for forked job processes; docs/benchmarks.md#voice-memory).",
        table("process | RSS MB | PSS MB", rows),
        f"A session adds about {session[-1] - session[0]:.0f} MB over its turns.",
        f"Wall time of this section: {v.wall_s:.0f} s.",
    ]


def numbers(v: VoiceResult) -> Mapping[str, object]:
    if v.skipped is not None:
        return {"skipped": v.skipped}
    return {
        "stages_ms": {key: summary(values) for key, values in v.stages_ms.items()},
        "memory_mb": {what: {"rss": rss, "pss": pss} for what, rss, pss in v.memory},
        "wall_s": round(v.wall_s, 1),
        # eos_to_first_audio_ms.{ours,livekit_default}.{p50,p95} and
        # premature_end_of_turn_rate.{ours,livekit_default}
        **(voice_latency.numbers(v.side_by_side) if v.side_by_side else {}),
    }
