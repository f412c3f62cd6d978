"""The voice section's side by side: end of speech -> first audio, ours vs livekit's default."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any

from agent.voice.stitching import word_distance
from testing.audio_io import PAUSED_QUESTIONS, plain_text
from testing.servers.openai_server import text_reply

from .common import ROOT, machine
from .sections import FULL, Summary, VoicePlan, p50, summary, table
from .server_proc import RemoteLLMServer
from .voice_session import PIPELINES, STT_NAMES, espeak_missing, first, speak

HEADING = "### Side by side: ours vs livekit's default pipeline"
# two sentences, as a voice reply usually is: the first goes to the TTS on its own
REPLY = "It is nine in the evening there right now. Is there anything else you would like to know?"
LABELS = {
    "ours": "ours (defaults: STT at each pause, end of turn from its transcript, first "
    "clause to the TTS, safe preemptive generation)",
    "livekit_default": "livekit default pipeline (VAD turn detection, default endpointing "
    "and tokenizer, our llm_node)",
}
GOAL_P50_MS, GOAL_P95_MS, GOAL_RATIO, GOAL_PREMATURE = 600.0, 800.0, 0.5, 0.05
SHORT_REPLIES = (
    "Thank you.",
    "How are you?",
    "No.",
    "Yes, please.",
    "Who are you?",
    "Why is that?",
    "Tell me more.",
    "Yes I do.",
    "Sure, I can.",
)
"""Complete turns that end on a word a question often goes on from ("you", "please",
"that", "more"): reported apart from the questions, whose pause must not end the turn."""
STAGES = {
    "vad": "end of speech -> VAD reports it (wall clock of `user_state_changed` -> listening)",
    "stt_start": "end of speech -> last segment sent to the STT (ours: at the pause)",
    "stt_request": "the last STT request (STTMetrics.duration)",
    "commit": "end of speech -> turn committed (user message added; end-of-turn decision)",
    "llm_ttft": "llm_node start -> first text (`llm_node_ttft`)",
    "text_tts": "first text -> first TTS request (tokenizer; `llm_node_ttfs` - ttft)",
    "tts_ttfb": "TTS request -> first audio byte (`tts_node_ttfb`)",
}


@dataclass
class Pipeline:
    eos_to_audio_ms: list[float] = field(default_factory=list)
    premature: list[bool] = field(default_factory=list)
    missing: int = 0
    stages: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in STAGES})
    heard: list[str] = field(default_factory=list)
    errors: int = 0
    """Word edits from what was said to what was committed, over all utterances."""
    said_words: int = 0
    short_ms: list[float] = field(default_factory=list)
    """End of speech -> first audio of the short replies."""

    @property
    def wer(self) -> float:
        return self.errors / self.said_words if self.said_words else float("nan")

    @property
    def premature_rate(self) -> float:
        return sum(self.premature) / len(self.premature) if self.premature else float("nan")

    def p50(self, stage: str) -> float:
        return p50(self.stages[stage])


@dataclass
class LatencyResult:
    plan: VoicePlan
    skipped: str | None = None
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    wall_s: float = 0.0
    load_note: str = ""

    def summary(self, name: str) -> Summary:
        return Summary.of(self.pipelines[name].eos_to_audio_ms)

    def eos_to_audio_ms(self, short: bool = False) -> dict[str, dict[str, float]]:
        """p50 / p95 end of speech -> first audio per pipeline, of the questions or the
        short replies."""
        return {
            name: summary(p.short_ms if short else p.eos_to_audio_ms, digits=1, n=False)
            for name, p in self.pipelines.items()
        }


def run(plan: VoicePlan) -> LatencyResult:
    """Against a scripted LLM of its own: every request gets the same reply (preemptive
    generation sends requests that are then thrown away)."""
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    if (skipped := espeak_missing()) is not None:
        return LatencyResult(plan, skipped)
    reply = text_reply(REPLY, ttft=plan.ttft, token_delay=plan.token_delay)
    with RemoteLLMServer(default=reply) as server:
        spec = {"pipelines": PIPELINES, "pause": plan.pause, "stt": plan.stt}
        spoken = speak(server.base_url, PAUSED_QUESTIONS, plan.side_by_side, **spec)
        short = speak(server.base_url, SHORT_REPLIES, len(SHORT_REPLIES), **spec)
    result = LatencyResult(plan, wall_s=time.perf_counter() - started)
    result.load_note = (
        f"1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, "
        f"on {os.cpu_count()} CPUs"
    )
    for name in PIPELINES:
        n = len(PAUSED_QUESTIONS)
        said = [plain_text(PAUSED_QUESTIONS[k % n]) for k in range(len(spoken.tails))]
        result.pipelines[name] = p = _pipeline(spoken.data[name], spoken.tails, said)
        p.short_ms = _pipeline(short.data[name], short.tails, list(SHORT_REPLIES)).eos_to_audio_ms
    for name, _k in [*spoken.data["missing"], *short.data["missing"]]:
        result.pipelines[name].missing += 1
    return result


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def _pipeline(log: dict[str, Any], tails: list[float], said: list[str]) -> Pipeline:
    p = Pipeline()
    audio_starts = sorted(a for a in log["audio_starts"] if a is not None)

    def add(stage: str, seconds: float | None) -> None:
        if seconds is not None and seconds >= 0:
            p.stages[stage].append(seconds * 1000)

    for k, mic_end in ((int(k), at) for k, at in log["mic_end"].items()):
        eos = mic_end - tails[k]
        users = [i for i in log["items"] if i["turn"] == k and i["role"] == "user"]
        p.heard += [u["text"] for u in users]
        words = _words(said[k])
        p.errors += word_distance(words, _words(" ".join(u["text"] for u in users)))
        p.said_words += len(words)
        p.premature.append(len(users) > 1 or any(u["at"] < eos for u in users))
        if (audio := next((a for a in audio_starts if a > eos), None)) is not None:
            p.eos_to_audio_ms.append((audio - eos) * 1000)
        listening = first(log["user_states"], k, state="listening")
        add("vad", None if listening is None else listening["at"] - eos)
        sent = [s["sent_at"] for s in log["segments_sent"] if s["turn"] == k]
        add("stt_start", max(sent) - eos if sent else None)
        stt = [m for m in log["metrics"] if m["turn"] == k and m["type"] == "stt_metrics"]
        add("stt_request", stt[-1]["duration"] if stt else None)
        add("commit", users[-1]["at"] - eos if users else None)
        replies = (i for i in log["items"] if i["turn"] == k and i["role"] == "assistant")
        if (reply := next((i for i in replies if i["at"] > eos), None)) is not None:
            m = reply["metrics"]
            ttft, ttfs = m.get("llm_node_ttft"), m.get("llm_node_ttfs")
            add("llm_ttft", ttft)
            add("text_tts", ttfs - ttft if ttft is not None and ttfs is not None else None)
            add("tts_ttfb", m.get("tts_node_ttfb"))
    return p


def render(result: LatencyResult) -> list[str]:
    if result.skipped:
        return [f"Skipped: {result.skipped}"]
    p, ours, base = result.plan, result.pipelines["ours"], result.pipelines["livekit_default"]
    rows = [
        [LABELS[name], *_p50_p95(s), _premature(v), f"{v.wer:.3f}", *_p50_p95(short), v.missing]
        for name, v in result.pipelines.items()
        for s, short in [(result.summary(name), Summary.of(v.short_ms))]
    ]
    ours_ms, base_ms = result.summary("ours").p50, result.summary("livekit_default").p50
    ratio, rate = ours_ms / base_ms if base_ms else float("nan"), ours.premature_rate
    ours_p95 = result.summary("ours").p95
    stages = [[label, *(_ms(v.stages[k]) for v in (ours, base))] for k, label in STAGES.items()]
    return [
        f"{p.side_by_side} utterances per pipeline, interleaved (one to each in turn), each "
        "with a 300-900 ms pause in the middle; scripted LLM with "
        f"{p.ttft * 1000:.0f} ms to first token and {p.token_delay * 1000:.0f} ms between "
        f'words, reply "{REPLY}". STT of both: {STT_NAMES[p.stt]}. Then the '
        f"{len(SHORT_REPLIES)} short replies, once each. Machine load: {result.load_note}.",
        table(
            "pipeline | questions: end of speech -> first audio p50 ms | p95 ms | premature end "
            "of turn | word error rate | short replies: p50 ms | p95 ms | no answer",
            rows,
        ),
        f"Goal: p50 <= {GOAL_P50_MS:.0f} ms: {ours_ms:.0f} ms, {_met(ours_ms <= GOAL_P50_MS)}; "
        f"p95 <= {GOAL_P95_MS:.0f} ms: {ours_p95:.0f} ms, {_met(ours_p95 <= GOAL_P95_MS)}; "
        f"<= {GOAL_RATIO}x livekit's default: {ratio:.2f}x, {_met(ratio <= GOAL_RATIO)}; "
        f"premature end of turn <= {GOAL_PREMATURE:.0%}: {rate:.0%}, "
        f"{_met(rate <= GOAL_PREMATURE)}.",
        "Where the time goes (p50 ms, each stage measured alone; stages overlap in ours):",
        table("stage | " + " | ".join(PIPELINES), stages),
        _limits(ours, base),
        "What ours heard: " + "; ".join(f'"{h}"' for h in ours.heard[: len(PAUSED_QUESTIONS)]),
        "Said: " + "; ".join(f'"{plain_text(q)}"' for q in PAUSED_QUESTIONS),
        f"Wall time of this section: {result.wall_s:.0f} s.",
    ]


def _premature(v: Pipeline) -> str:
    return f"{sum(v.premature)}/{len(v.premature)} ({v.premature_rate:.0%})"


def _p50_p95(s: Summary) -> list[str]:
    return [f"{s.p50:.0f}", f"{s.p95:.0f}"]


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def _ms(values: list[float]) -> str:
    return f"{p50(values):.0f}" if values else "-"


def _limits(ours: Pipeline, base: Pipeline) -> str:
    after_commit = ours.p50("llm_ttft") + ours.p50("text_tts") + ours.p50("tts_ttfb")
    return (
        f"What limits it (p50s, docs/benchmarks.md#side-by-side). Ours: STT sent "
        f"{ours.p50('stt_start'):.0f} ms after the end of speech, STT "
        f"{ours.p50('stt_request'):.0f} ms, commit at {ours.p50('commit'):.0f} ms, then LLM, "
        f"first clause and TTS add {after_commit:.0f} ms. livekit's default: VAD "
        f"{base.p50('vad'):.0f} ms, STT {base.p50('stt_request'):.0f} ms, first sentence "
        f"{base.p50('text_tts'):.0f} ms."
    )


def numbers(result: LatencyResult) -> dict[str, object]:
    """eos_to_first_audio_ms and premature_end_of_turn_rate per pipeline, in `voice`."""
    if result.skipped:
        return {"side_by_side_skipped": result.skipped}
    return {
        "eos_to_first_audio_ms": result.eos_to_audio_ms(),
        "premature_end_of_turn_rate": {
            name: round(p.premature_rate, 4) for name, p in result.pipelines.items()
        },
        "wer": {name: round(p.wer, 4) for name, p in result.pipelines.items()},
        "utterances": result.plan.side_by_side,
        "stt": result.plan.stt,
        "short_replies": {
            "eos_to_first_audio_ms": result.eos_to_audio_ms(short=True),
            "utterances": len(SHORT_REPLIES),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.voice_latency")
    parser.add_argument("--turns", type=int, default=FULL.voice.side_by_side)
    parser.add_argument("--stt", choices=sorted(STT_NAMES), default=FULL.voice.stt)
    parser.add_argument(
        "--no-write", action="store_true", help="touch neither results.json nor BENCHMARKS.md"
    )
    args = parser.parse_args(argv)
    result = run(replace(FULL.voice, side_by_side=args.turns, stt=args.stt))
    text = "\n\n".join([HEADING, *render(result)])
    print(text)
    if args.no_write or result.skipped:
        return 0
    # the numbers into results.json where `python -m bench` puts them, with this run's date
    path = ROOT / "bench" / "results.json"
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault("voice", {}).update(
        numbers(result),
        side_by_side_date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        side_by_side_machine=machine(),
    )
    path.write_text(json.dumps(data, indent=2) + "\n")
    # the report in BENCHMARKS.md in place of the one there (at its end if none)
    report = ROOT / "BENCHMARKS.md"
    old = report.read_text(encoding="utf-8").splitlines() if report.exists() else []
    start = old.index(HEADING) if HEADING in old else len(old)
    after = (i for i in range(start + 1, len(old)) if old[i].startswith(("## ", "### ")))
    end = next(after, len(old))
    new = [*old[:start], *text.splitlines(), "", *old[end:]]
    report.write_text("\n".join(new).rstrip("\n") + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
