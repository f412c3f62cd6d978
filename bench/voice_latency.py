"""The voice path side by side: end of speech -> first audio, ours vs livekit's default.

Both pipelines run in one child process (`bench/voice_session.py`) and take turns: each
utterance is said to one, then to the other (the order alternates), with the same real-time
espeak-ng speech (questions with a 300-900 ms pause in the middle, SSML breaks), the same
Whisper server (faster-whisper-server, tiny.en, CPU), the same scripted LLM (in its own
process) and the same espeak-ng TTS server.

Measured on one wall clock (`time.time()`, shared by the processes), from the audio itself
rather than from livekit's estimates, so that both pipelines are judged alike:
- end of speech: when the microphone delivered the utterance's last frame, minus the silence
  after its last sample louder than 300/32768 (the WAV's padding and espeak's own tail);
- first audio: the first frame of the first reply that began after the end of speech;
- premature end of turn: the session committed a user turn before the end of speech (the
  agent took the pause for the end), or split the utterance into several turns.
Where the time goes comes from livekit's own metrics (EOU, STT, the reply's message metrics).

Part of the voice section; `python -m bench.voice_latency [--turns N]` runs it alone (N
utterances per pipeline) and puts its numbers in bench/results.json (under `voice`) and its
part of BENCHMARKS.md in place of the one there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from testing.audio_io import PAUSED_QUESTIONS, plain_text
from testing.servers.openai_server import text_reply

from .common import ROOT, Summary, machine
from .plan import FULL, VoicePlan
from .sections import p50, table
from .server_proc import RemoteLLMServer
from .voice_session import PIPELINES, espeak_missing, first, speak

HEADING = "### Side by side: ours vs livekit's default pipeline"
# two sentences, as a voice reply usually is: the first goes to the TTS on its own
REPLY = "It is nine in the evening there right now. Is there anything else you would like to know?"
LABELS = {
    "ours": "ours (defaults: STT at each pause, end of turn from its transcript, first "
    "clause to the TTS, safe preemptive generation)",
    "livekit_default": "livekit default pipeline (VAD turn detection, default endpointing "
    "and tokenizer, our llm_node)",
}
GOAL_P50_MS = 800.0
GOAL_RATIO = 0.6
GOAL_PREMATURE = 0.05
STAGES = (
    ("vad", "end of speech -> VAD reports it (wall clock of `user_state_changed` -> listening)"),
    ("stt_start", "end of speech -> last segment sent to Whisper (ours: at the pause)"),
    ("stt_request", "the last Whisper request (STTMetrics.duration)"),
    ("commit", "end of speech -> turn committed (user message added; end-of-turn decision)"),
    ("llm_ttft", "llm_node start -> first text (`llm_node_ttft`)"),
    ("text_tts", "first text -> first TTS request (tokenizer; `llm_node_ttfs` - ttft)"),
    ("tts_ttfb", "TTS request -> first audio byte (`tts_node_ttfb`)"),
)


@dataclass
class Pipeline:
    eos_to_audio_ms: list[float] = field(default_factory=list)
    premature: list[bool] = field(default_factory=list)
    missing: int = 0
    stages: dict[str, list[float]] = field(default_factory=dict)
    heard: list[str] = field(default_factory=list)

    @property
    def premature_rate(self) -> float:
        return sum(self.premature) / len(self.premature) if self.premature else float("nan")

    def p50(self, stage: str) -> float:
        return p50(self.stages.get(stage, []))


@dataclass
class LatencyResult:
    plan: VoicePlan
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    wall_s: float = 0.0
    load_note: str = ""
    skipped: str | None = None

    def summary(self, name: str) -> Summary:
        return Summary.of(self.pipelines[name].eos_to_audio_ms)


def run(plan: VoicePlan) -> LatencyResult:
    """With a scripted LLM of its own (every request gets the same reply: preemptive
    generation sends requests that are then thrown away)."""
    reply = text_reply(REPLY, ttft=plan.ttft, token_delay=plan.token_delay)
    with RemoteLLMServer(default=reply) as server:
        return measure(server, plan)


def measure(server: RemoteLLMServer, plan: VoicePlan) -> LatencyResult:
    started = time.perf_counter()
    result = LatencyResult(plan, skipped=espeak_missing())
    if result.skipped:
        return result
    load_before = os.getloadavg()[0]
    server.reset()
    spoken = speak(
        server.base_url, PAUSED_QUESTIONS, plan.side_by_side, pipelines=PIPELINES, pause=plan.pause
    )
    result.load_note = (
        f"1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, "
        f"on {os.cpu_count()} CPUs"
    )
    for name in PIPELINES:
        result.pipelines[name] = _pipeline(spoken.data[name], spoken.tails)
    for name, _k in spoken.data["missing"]:
        result.pipelines[name].missing += 1
    result.wall_s = time.perf_counter() - started
    return result


def _pipeline(data: dict[str, Any], tails: list[float]) -> Pipeline:
    p = Pipeline()
    items: list[dict[str, Any]] = data["items"]
    audio_starts = sorted(a for a in data["audio_starts"] if a is not None)
    for key, mic_end in data["mic_end"].items():
        k = int(key)
        eos = mic_end - tails[k]
        users = [i for i in items if i["turn"] == k and i["role"] == "user"]
        p.heard += [u["text"] for u in users]
        p.premature.append(len(users) > 1 or any(u["at"] < eos for u in users))
        if (audio := next((a for a in audio_starts if a > eos), None)) is not None:
            p.eos_to_audio_ms.append((audio - eos) * 1000)
        _stages(p, data, k, eos, users)
    return p


def _stages(
    p: Pipeline, data: dict[str, Any], k: int, eos: float, users: list[dict[str, Any]]
) -> None:
    def add(stage: str, seconds: float | None) -> None:
        if seconds is not None and seconds >= 0:
            p.stages.setdefault(stage, []).append(seconds * 1000)

    listening = first(data["user_states"], k, state="listening")
    add("vad", None if listening is None else listening["at"] - eos)
    sent = [s["sent_at"] for s in data["segments_sent"] if s["turn"] == k]
    add("stt_start", max(sent) - eos if sent else None)
    stt = [m["duration"] for m in data["metrics"] if m["turn"] == k and m["type"] == "stt_metrics"]
    add("stt_request", stt[-1] if stt else None)
    if users:
        add("commit", users[-1]["at"] - eos)
    replies = (i for i in data["items"] if i["turn"] == k and i["role"] == "assistant")
    if (reply := next((i for i in replies if i["at"] > eos), None)) is not None:
        m = reply["metrics"]
        ttft, ttfs = m.get("llm_node_ttft"), m.get("llm_node_ttfs")
        add("llm_ttft", ttft)
        add("text_tts", ttfs - ttft if ttft is not None and ttfs is not None else None)
        add("tts_ttfb", m.get("tts_node_ttfb"))


def render(result: LatencyResult) -> list[str]:
    if result.skipped:
        return [f"Skipped: {result.skipped}", ""]
    p = result.plan
    rows = []
    for name in PIPELINES:
        v, s = result.pipelines[name], result.summary(name)
        premature = f"{sum(v.premature)}/{len(v.premature)} ({v.premature_rate:.0%})"
        rows.append([LABELS[name], f"{s.p50:.0f}", f"{s.p95:.0f}", premature, v.missing])
    ours, base = result.summary("ours").p50, result.summary("livekit_default").p50
    ratio = ours / base if base else float("nan")
    rate = result.pipelines["ours"].premature_rate
    heard = result.pipelines["ours"].heard[: len(PAUSED_QUESTIONS)]
    return [
        f"{p.side_by_side} utterances per pipeline, interleaved (one to each in turn), each "
        "with a 300-900 ms pause in the middle; scripted LLM with "
        f"{p.ttft * 1000:.0f} ms to first token and {p.token_delay * 1000:.0f} ms between "
        f'words, reply "{REPLY}". Machine load: {result.load_note}.',
        "",
        table(
            "pipeline | end of speech -> first audio p50 ms | p95 ms | premature end of turn "
            "| no answer",
            rows,
        ),
        "",
        f"Goal: p50 <= {GOAL_P50_MS:.0f} ms: {ours:.0f} ms, {_met(ours <= GOAL_P50_MS)}; "
        f"<= {GOAL_RATIO}x livekit's default: {ratio:.2f}x, {_met(ratio <= GOAL_RATIO)}; "
        f"premature end of turn <= {GOAL_PREMATURE:.0%}: {rate:.0%}, "
        f"{_met(rate <= GOAL_PREMATURE)}.",
        "",
        "Where the time goes (p50 ms, each stage measured alone; stages overlap in ours):",
        "",
        table(
            "stage | " + " | ".join(PIPELINES),
            [
                [label, *(_ms(result.pipelines[name].stages.get(key)) for name in PIPELINES)]
                for key, label in STAGES
            ],
        ),
        "",
        _limits(result.pipelines["ours"], result.pipelines["livekit_default"]),
        "",
        "What ours heard: " + "; ".join(f'"{h}"' for h in heard),
        "",
        "Said: " + "; ".join(f'"{plain_text(q)}"' for q in PAUSED_QUESTIONS),
        "",
        f"Wall time of this section: {result.wall_s:.0f} s.",
        "",
    ]


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def _ms(values: list[float] | None) -> str:
    return f"{p50(values):.0f}" if values else "-"


def _limits(ours: Pipeline, base: Pipeline) -> str:
    after_commit = ours.p50("llm_ttft") + ours.p50("text_tts") + ours.p50("tts_ttfb")
    return (
        "What limits it (p50s). Ours: the last stretch of speech goes to Whisper "
        f"{ours.p50('stt_start'):.0f} ms after the end of speech (once the VAD has heard "
        f"0.2 s of silence), and Whisper takes {ours.p50('stt_request'):.0f} ms (the stretch "
        "is sent behind the previous one's audio, so it costs about what a whole question "
        'costs: without that context tiny.en hears "Paris today" alone as "Power is '
        'done"). The turn is committed '
        f"{ours.p50('commit'):.0f} ms after the end of speech, as soon as that transcript "
        "is in (the endpointing delay has passed by then), and preemptive generation cannot "
        "start earlier either: the words after the pause are not known before. Then the "
        f"LLM's first token ({ours.p50('llm_ttft'):.0f} ms, scripted), the first clause "
        f"({ours.p50('text_tts'):.0f} ms of words) and the TTS ({ours.p50('tts_ttfb'):.0f} ms) "
        f"add {after_commit:.0f} ms. livekit's default waits {base.p50('vad'):.0f} ms for "
        f"its VAD, then Whisper on the whole question ({base.p50('stt_request'):.0f} ms), "
        f"and holds the first {base.p50('text_tts'):.0f} ms of text for a whole sentence. "
        "Its premature ends are pauses longer than its 0.55 s window: the words before the "
        "pause are transcribed, and when the user stops for good the turn ends on them while "
        "the rest is still with Whisper (ours waits for every stretch it has sent, and an "
        'open-ended transcript such as "what is the capital of" never ends a turn). '
        f"Reaching 800 ms would take a Whisper request under about "
        f"{800 - ours.p50('stt_start') - after_commit:.0f} ms (800 ms less the pause and "
        "what follows the commit): tiny.en on these 2 CPUs does not get there (a GPU, or a "
        "streaming STT, would)."
    )


def numbers(result: LatencyResult) -> dict[str, object]:
    """eos_to_first_audio_ms and premature_end_of_turn_rate per pipeline, in `voice`."""
    if result.skipped:
        return {"side_by_side_skipped": result.skipped}
    return {
        "eos_to_first_audio_ms": {
            name: {"p50": round(s.p50, 1), "p95": round(s.p95, 1)}
            for name in PIPELINES
            for s in [result.summary(name)]
        },
        "premature_end_of_turn_rate": {
            name: round(result.pipelines[name].premature_rate, 4) for name in PIPELINES
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.voice_latency")
    parser.add_argument("--turns", type=int, default=FULL.voice.side_by_side)
    parser.add_argument(
        "--no-write", action="store_true", help="touch neither results.json nor BENCHMARKS.md"
    )
    args = parser.parse_args(argv)
    result = run(replace(FULL.voice, side_by_side=args.turns))
    lines = [HEADING, "", *render(result)]
    print("\n".join(lines))
    if not args.no_write and not result.skipped:
        _write_numbers(result, ROOT / "bench" / "results.json")
        _replace_part(ROOT / "BENCHMARKS.md", lines)
    return 0


def _write_numbers(result: LatencyResult, path: Path) -> None:
    """This run's numbers into results.json under `voice`, where `python -m bench` puts
    them, with the date and machine of this run."""
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    voice = data.setdefault("voice", {})
    voice.update(numbers(result))
    voice["side_by_side_date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    voice["side_by_side_machine"] = machine()
    path.write_text(json.dumps(data, indent=2) + "\n")


def _replace_part(path: Path, lines: list[str]) -> None:
    """The side by side in BENCHMARKS.md in place of the one there (at its end if none)."""
    old = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    start = old.index(HEADING) if HEADING in old else len(old)
    after = (i for i in range(start + 1, len(old)) if old[i].startswith(("## ", "### ")))
    end = next(after, len(old))
    path.write_text("\n".join([*old[:start], *lines, *old[end:]]) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
