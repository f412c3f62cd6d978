"""Section: spoken turns through the worker's session, stage by stage, and its memory; then
the side by side, end of speech -> first audio, ours vs livekit's default pipeline
(`python -m bench.voice_latency` runs that part alone)."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from agent.config.settings import Settings
from agent.voice.stitching import word_distance
from agent.voice.turn_detection import vad_min_silence
from testing.audio_io import PAUSED_QUESTIONS, SHORT_REPLIES, plain_text, words_of
from testing.servers.openai_server import text_reply

from . import no_tool, voice_session
from .sections import FULL, ROOT, Context, VoicePlan, cells, goal, machine, p50, pct, summary, table
from .server_proc import RemoteLLMServer
from .voice_session import PIPELINES, STT_NAMES, Stages, espeak_missing, first, speak

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
# key in results.json: (stage, where its number comes from); docs/benchmarks.md#voice says more
STAGES = {
    "eos_vad": (f"{EOS} VAD reports it", "`user_state_changed` -> listening, wall clock"),
    "eos_transcript": (f"{EOS} final transcript", "EOUMetrics.transcription_delay"),
    "stt_request": ("of which: the STT request", "STTMetrics.duration"),
    "eos_turn": (f"{EOS} end of turn", "EOUMetrics.end_of_utterance_delay"),
    "transcript_turn": ("final transcript -> end of turn", "EOU delay - transcription delay"),
    "llm_ttft": ("LLM request -> first token (client)", "LLMMetrics.ttft"),
    "server_ttft": ("LLM request -> first token (server)", "scripted server, as in section 1"),
    "node_ttft": ("llm_node start -> first text (our engine)", "`llm_node_ttft`"),
    "text_tts": ("first text -> first TTS request", "`llm_node_ttfs` - `llm_node_ttft`"),
    "tts_ttfb": ("TTS request -> first audio byte", "`tts_node_ttfb`"),
    "eos_tts": (f"{EOS} first TTS request", "TTS server's arrival, wall clock"),
    "e2e": (f"{EOS} agent starts speaking", "`e2e_latency`"),
}
HEADING = "### Side by side: ours vs livekit's default pipeline"
# two sentences, as a voice reply usually is: the first goes to the TTS on its own
REPLY = "It is nine in the evening there right now. Is there anything else you would like to know?"
LABELS = {"ours": "ours (the worker's defaults)", "livekit_default": "livekit default pipeline"}
GOAL_P50_MS, GOAL_P95_MS, GOAL_RATIO, GOAL_PREMATURE = 600.0, 800.0, 0.5, 0.05
SIDE_STAGES = {
    "vad": "end of speech -> VAD reports it (wall clock of `user_state_changed` -> listening)",
    "stt_start": "end of speech -> last segment sent to the STT (ours: at the pause)",
    "stt_request": "the last STT request (STTMetrics.duration)",
    "commit": "end of speech -> turn committed (user message added; end-of-turn decision)",
    "node_ttft": "llm_node start -> first text (`llm_node_ttft`)",
    "text_tts": "first text -> first TTS request (tokenizer; `llm_node_ttfs` - ttft)",
    "tts_ttfb": "TTS request -> first audio byte (`tts_node_ttfb`)",
}


@dataclass
class Pipeline:
    """One pipeline of the side by side: its utterances judged from the audio."""

    eos_to_audio_ms: list[float] = field(default_factory=list)
    premature: list[bool] = field(default_factory=list)
    missing: int = 0
    stages: Stages = field(default_factory=lambda: Stages(list(SIDE_STAGES)))
    heard: list[str] = field(default_factory=list)
    errors: int = 0  # word edits from what was said to what was committed, all utterances
    said_words: int = 0
    short_ms: list[float] = field(default_factory=list)  # eos -> first audio, short replies

    @property
    def wer(self) -> float:
        return self.errors / self.said_words if self.said_words else float("nan")

    @property
    def premature_rate(self) -> float:
        return sum(self.premature) / len(self.premature) if self.premature else float("nan")

    def row(self, label: str) -> list[object]:
        premature = f"{sum(self.premature)}/{len(self.premature)} ({self.premature_rate:.0%})"
        questions = [*cells(self.eos_to_audio_ms, ".0f"), premature, f"{self.wer:.3f}"]
        return [label, *questions, *cells(self.short_ms, ".0f"), self.missing]


@dataclass
class SideBySide:
    plan: VoicePlan
    skipped: str | None = None
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    wall_s: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)  # the 1-minute load average before and after


@dataclass
class VoiceResult:
    plan: VoicePlan
    skipped: str | None = None
    stages: Stages = field(default_factory=lambda: Stages(list(STAGES)))
    memory: list[voice_session.Row] = field(default_factory=list)
    heard: list[str] = field(default_factory=list)
    anchor_offset_ms: list[float] = field(default_factory=list)  # livekit's eos - the WAV's
    settings: Settings = field(default_factory=Settings.model_construct)  # the worker's defaults
    wall_s: float = 0.0
    no_tool_ratio: float | None = None  # no-tool's `llm_node` ratio for our default, if it ran
    side_by_side: SideBySide | None = None


def run(ctx: Context) -> VoiceResult:
    started, plan = time.perf_counter(), ctx.plan.voice
    if plan.turns <= 0:
        return VoiceResult(plan, "no spoken turns asked for (`--quick --voice-turns 1` runs one)")
    if (missing := espeak_missing()) is not None:
        return VoiceResult(plan, missing)
    result = VoiceResult(plan)
    n = plan.warmup + plan.turns
    ctx.server.script(*[text_reply(REPLY, ttft=plan.ttft, token_delay=plan.token_delay)] * n)
    spec = {"pipelines": ["ours"], "pause": plan.pause, "greeting": GREETING, "stt": plan.stt}
    spoken = speak(ctx.server.base_url, QUESTIONS, n, **spec)
    if spoken["missing"]:
        raise RuntimeError(f"spoken turns went unanswered: {spoken['missing']}")
    result.stages["server_ttft"] = [
        r.ttft * 1000 for r in ctx.server.requests() if r.ttft is not None
    ][plan.warmup :]
    _stages(result, spoken)
    after = spoken["ours"]["rss_mb_after_turn"]
    session = "session process, prewarmed (worker imported, VAD loaded), before the session"
    result.memory = [
        (session, spoken["rss_mb_prewarmed"], None),
        ("session process after its first spoken turn", after[plan.warmup], None),
        (f"session process after {len(after)} spoken turns", after[-1], None),
    ]
    if plan.idle_worker:
        result.memory += voice_session.idle_worker(ctx.server.base_url)
    result.wall_s = time.perf_counter() - started
    if rows := ctx.results.get(no_tool.NAME):
        ours = no_tool.ours(rows, "llm_node")
        result.no_tool_ratio = None if ours is None else p50(ours.series["ratio"])
    result.side_by_side = side_by_side(plan)
    return result


def _stages(result: VoiceResult, spoken: dict[str, Any]) -> None:
    """Each stage's latency per measured turn, from what the session reported."""
    log, add = spoken["ours"], result.stages.add
    items, metrics = log["items"], log["metrics"]
    for k in range(result.plan.warmup, result.plan.warmup + result.plan.turns):
        result.heard += [i["text"] for i in items if i["turn"] == k and i["role"] == "user"]
        eou = first(metrics, k, type="eou_metrics")
        add("eos_turn", eou.get("end_of_utterance_delay"))
        add("eos_transcript", eou.get("transcription_delay"))
        add("transcript_turn", eou.get("end_of_utterance_delay"), eou.get("transcription_delay"))
        add("stt_request", first(metrics, k, type="stt_metrics").get("duration"))
        add("llm_ttft", first(metrics, k, type="llm_metrics").get("ttft"))
        result.stages.add_reply(reply := first(items, k, role="assistant"))
        add("e2e", reply.get("metrics", {}).get("e2e_latency"))
        eos = first(items, k, role="user").get("metrics", {}).get("stopped_speaking_at")
        if eos is None:
            continue
        add("eos_vad", first(log["user_states"], k, state="listening").get("at"), eos)
        tts = (at for text, at in spoken["tts_requests"] if at > eos and text != GREETING)
        add("eos_tts", next(tts, None), eos)
        result.anchor_offset_ms.append((eos - log["speech_end"][str(k)]) * 1000)


def side_by_side(plan: VoicePlan) -> SideBySide:
    """Against a scripted LLM of its own: every request gets the same reply (preemptive
    generation sends requests that are then thrown away)."""
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    if (skipped := espeak_missing()) is not None:
        return SideBySide(plan, skipped)
    reply = text_reply(REPLY, ttft=plan.ttft, token_delay=plan.token_delay)
    with RemoteLLMServer(default=reply) as server:
        spec = {"pipelines": PIPELINES, "pause": plan.pause, "stt": plan.stt}
        spoken = speak(server.base_url, PAUSED_QUESTIONS, plan.side_by_side, **spec)
        short = speak(server.base_url, SHORT_REPLIES, len(SHORT_REPLIES), **spec)
    load = (load_before, os.getloadavg()[0])
    result = SideBySide(plan, wall_s=time.perf_counter() - started, load=load)
    said = [plain_text(q) for q in PAUSED_QUESTIONS]
    for name in PIPELINES:
        result.pipelines[name] = p = _pipeline(spoken[name], said)
        p.short_ms = _pipeline(short[name], list(SHORT_REPLIES)).eos_to_audio_ms
    for name, _k in [*spoken["missing"], *short["missing"]]:
        result.pipelines[name].missing += 1
    return result


def _pipeline(log: dict[str, Any], said: list[str]) -> Pipeline:
    p, items = Pipeline(), log["items"]
    audio_starts = sorted(a for a in log["audio_starts"] if a is not None)
    for k, eos in ((int(k), at) for k, at in log["speech_end"].items()):
        users = [i for i in items if i["turn"] == k and i["role"] == "user"]
        p.heard += [u["text"] for u in users]
        words = words_of(said[k % len(said)])  # the questions, cycled
        p.errors += word_distance(words, words_of(" ".join(u["text"] for u in users)))
        p.said_words += len(words)
        p.premature.append(len(users) > 1 or any(u["at"] < eos for u in users))
        if (audio := next((a for a in audio_starts if a > eos), None)) is not None:
            p.eos_to_audio_ms.append((audio - eos) * 1000)
        p.stages.add("vad", first(log["user_states"], k, state="listening").get("at"), eos)
        sent = [s["sent_at"] for s in log["segments_sent"] if s["turn"] == k]
        p.stages.add("stt_start", max(sent, default=None), eos)
        stt = [m for m in log["metrics"] if m["turn"] == k and m["type"] == "stt_metrics"]
        p.stages.add("stt_request", stt[-1]["duration"] if stt else None)
        p.stages.add("commit", users[-1]["at"] if users else None, eos)
        replies = (i for i in items if i["turn"] == k and i["role"] == "assistant")
        p.stages.add_reply(next((i for i in replies if i["at"] > eos), None))
    return p


def render(v: VoiceResult) -> list[str]:
    if v.skipped is not None:
        return [f"Skipped: {v.skipped}."]
    # the worker's prewarm loads the VAD with the window its turn detection needs
    p, s, vad_silence = v.plan, v.settings, vad_min_silence(v.settings)
    blocks = [
        f"{p.turns} spoken turns (after {p.warmup} for warm-up), STT {STT_NAMES[p.stt]}, "
        f"VAD silence {vad_silence * 1000:.0f} ms, endpointing {s.endpointing_min_delay * 1000:.0f}"
        f"-{s.endpointing_max_delay * 1000:.0f} ms, scripted LLM (first token "
        f"{p.ttft * 1000:.0f} ms, {p.token_delay * 1000:.0f} ms between words). Method: "
        "docs/benchmarks.md#voice.",
        table(
            "stage | source | p50 ms | p95 ms | turns",
            [
                [stage, source, *cells(v.stages[key]), len(v.stages[key])]
                for key, (stage, source) in STAGES.items()
            ],
        ),
    ]
    if v.anchor_offset_ms:
        offset = p50(v.anchor_offset_ms)
        blocks.append(f"livekit's end of speech - the WAV's real one: p50 {offset:+.0f} ms.")
    session = [rss for what, rss, _ in v.memory if what.startswith("session process")]
    memory = [
        [what, f"{rss:.1f}", "" if pss is None else f"{pss:.1f}"] for what, rss, pss in v.memory
    ]
    blocks += [
        *_limits(v),
        "Memory (RSS, and PSS for forked job processes; docs/benchmarks.md#voice-memory).",
        table("process | RSS MB | PSS MB", memory),
        f"A session adds about {session[-1] - session[0]:.0f} MB over its turns.",
        f"Wall time of this section: {v.wall_s:.0f} s.",
    ]
    if v.side_by_side is not None:
        blocks += [HEADING, *render_side_by_side(v.side_by_side)]
    return blocks


def _limits(v: VoiceResult) -> list[str]:
    """Where the time goes, and how our engine compares with the no-tool section."""
    s = v.stages
    blocks = [
        f"What limits it (p50s, docs/benchmarks.md#voice): VAD {s.p50('eos_vad'):.0f} ms, "
        f"STT {s.p50('stt_request'):.0f} ms, turn end {s.p50('transcript_turn'):.1f} ms after "
        f"the transcript, LLM {s.p50('server_ttft'):.0f} ms, first sentence "
        f"{s.p50('text_tts'):.0f} ms, TTS {s.p50('tts_ttfb'):.0f} ms."
    ]
    if s["node_ttft"] and s["server_ttft"]:
        ratio, section1 = s.p50("node_ttft") / s.p50("server_ttft"), v.no_tool_ratio
        no_tool = f" (no-tool section, `llm_node` level: {section1:.3f})" if section1 else ""
        blocks.append(f"First text out of `llm_node` / server TTFT: p50 {ratio:.3f}{no_tool}.")
    if v.heard:
        more = "; ..." if len(v.heard) > 6 else ""
        heard = "; ".join(f'"{h}"' for h in v.heard[:6])
        blocks.append(f"What the STT heard (the LLM got these as the user's turns): {heard}{more}")
    return blocks


def render_side_by_side(result: SideBySide) -> list[str]:
    if result.skipped:
        return [f"Skipped: {result.skipped}"]
    p, ours, base = result.plan, result.pipelines["ours"], result.pipelines["livekit_default"]
    o, b = ours.stages, base.stages
    rows = [v.row(LABELS[name]) for name, v in result.pipelines.items()]
    ours_ms, base_ms = p50(ours.eos_to_audio_ms), p50(base.eos_to_audio_ms)
    ratio, rate = ours_ms / base_ms if base_ms else float("nan"), ours.premature_rate
    ours_p95 = pct(ours.eos_to_audio_ms, 95)
    stages = [
        [label, *(f"{v.stages.p50(k):.0f}" if v.stages[k] else "-" for v in (ours, base))]
        for k, label in SIDE_STAGES.items()
    ]
    goals = [
        (f"p50 <= {GOAL_P50_MS:.0f} ms", f"{ours_ms:.0f} ms", ours_ms <= GOAL_P50_MS),
        (f"p95 <= {GOAL_P95_MS:.0f} ms", f"{ours_p95:.0f} ms", ours_p95 <= GOAL_P95_MS),
        (f"<= {GOAL_RATIO}x livekit's default", f"{ratio:.2f}x", ratio <= GOAL_RATIO),
        (f"premature end of turn <= {GOAL_PREMATURE:.0%}", f"{rate:.0%}", rate <= GOAL_PREMATURE),
    ]
    return [
        f"{p.side_by_side} utterances per pipeline, then {len(SHORT_REPLIES)} short replies; "
        f"LLM first token {p.ttft * 1000:.0f} ms, {p.token_delay * 1000:.0f} ms between words; "
        f"STT: {STT_NAMES[p.stt]}. Machine load: 1-minute load average {result.load[0]:.1f} "
        f"before, {result.load[1]:.1f} after, on {os.cpu_count()} CPUs.",
        table(
            "pipeline | questions: end of speech -> first audio p50 ms | p95 ms | premature end "
            "of turn | word error rate | short replies: p50 ms | p95 ms | no answer",
            rows,
        ),
        goal(*goals, missed="not met"),
        "Where the time goes (p50 ms, each stage measured alone; stages overlap in ours):",
        table("stage | " + " | ".join(PIPELINES), stages),
        f"What limits it (p50s, docs/benchmarks.md#side-by-side). Ours: STT sent "
        f"{o.p50('stt_start'):.0f} ms after the end of speech, STT {o.p50('stt_request'):.0f} ms, "
        f"commit at {o.p50('commit'):.0f} ms, then LLM, first clause and TTS add "
        f"{o.p50('node_ttft') + o.p50('text_tts') + o.p50('tts_ttfb'):.0f} ms. livekit's default: "
        f"VAD {b.p50('vad'):.0f} ms, STT {b.p50('stt_request'):.0f} ms, first sentence "
        f"{b.p50('text_tts'):.0f} ms.",
        "What ours heard: " + "; ".join(f'"{h}"' for h in ours.heard[: len(PAUSED_QUESTIONS)]),
        "Said: " + "; ".join(f'"{plain_text(q)}"' for q in PAUSED_QUESTIONS),
        f"Wall time of this section: {result.wall_s:.0f} s.",
    ]


def numbers(v: VoiceResult) -> Mapping[str, object]:
    if v.skipped is not None:
        return {"skipped": v.skipped}
    return {
        "stages_ms": {key: summary(values) for key, values in v.stages.items()},
        "memory_mb": {what: {"rss": rss, "pss": pss} for what, rss, pss in v.memory},
        "wall_s": round(v.wall_s, 1),
        **(side_by_side_numbers(v.side_by_side) if v.side_by_side else {}),
    }


def side_by_side_numbers(result: SideBySide) -> dict[str, object]:
    """eos_to_first_audio_ms, premature_end_of_turn_rate, wer per pipeline, in `voice`."""
    if result.skipped:
        return {"side_by_side_skipped": result.skipped}

    def each(number: Callable[[Pipeline], object]) -> dict[str, object]:
        return {name: number(p) for name, p in result.pipelines.items()}

    return {
        "eos_to_first_audio_ms": each(lambda p: summary(p.eos_to_audio_ms, digits=1, n=False)),
        "premature_end_of_turn_rate": each(lambda p: round(p.premature_rate, 4)),
        "wer": each(lambda p: round(p.wer, 4)),
        "utterances": result.plan.side_by_side,
        "stt": result.plan.stt,
        "short_replies": {
            "eos_to_first_audio_ms": each(lambda p: summary(p.short_ms, digits=1, n=False)),
            "utterances": len(SHORT_REPLIES),
        },
    }


def side_by_side_main(argv: list[str] | None = None) -> int:
    """`python -m bench.voice_latency`: the side by side alone, into the JSON and the report."""
    parser = argparse.ArgumentParser(prog="python -m bench.voice_latency")
    parser.add_argument("--turns", type=int, default=FULL.voice.side_by_side)
    parser.add_argument("--stt", choices=sorted(STT_NAMES), default=FULL.voice.stt)
    parser.add_argument("--no-write", action="store_true", help="print, write no files")
    args = parser.parse_args(argv)
    result = side_by_side(replace(FULL.voice, side_by_side=args.turns, stt=args.stt))
    text = "\n\n".join([HEADING, *render_side_by_side(result)])
    print(text)
    if args.no_write or result.skipped:
        return 0
    # the numbers into results.json where `python -m bench` puts them, with this run's date
    path = ROOT / "bench" / "results.json"
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault("voice", {}).update(
        side_by_side_numbers(result),
        side_by_side_date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        side_by_side_machine=machine(),
    )
    finite = json.loads(json.dumps(data), parse_constant=lambda _: None)  # NaN as null
    path.write_text(json.dumps(finite, indent=2) + "\n")
    # the report in BENCHMARKS.md in place of the one there (at its end if none)
    report = ROOT / "BENCHMARKS.md"
    old = report.read_text(encoding="utf-8").splitlines() if report.exists() else []
    start = old.index(HEADING) if HEADING in old else len(old)
    after = (i for i in range(start + 1, len(old)) if old[i].startswith(("## ", "### ")))
    end = next(after, len(old))
    new = [*old[:start], *text.splitlines(), "", *old[end:]]
    report.write_text("\n".join(new).rstrip("\n") + "\n", encoding="utf-8")
    return 0
