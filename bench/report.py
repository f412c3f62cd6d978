"""Results as Markdown tables: printed, and written to BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from agent.config import Settings

from .common import Summary
from .first_text import OURS_DEFAULT, Backend, NoToolRow, ToolRow
from .overhead import OverheadResult
from .sessions import LevelResult
from .voice import SPEECH_LEVEL, VoiceResult


@dataclass(frozen=True, slots=True)
class RunInfo:
    command: str
    quick: bool
    backend: Backend
    reps: int
    elapsed_s: float = 0.0


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}, "
        f"Python {sys.version.split()[0]}"
    )


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def f1(x: float) -> str:
    return f"{x:.1f}"


def f2(x: float) -> str:
    return f"{x:.2f}"


def f3(x: float) -> str:
    return f"{x:.3f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def render(
    info: RunInfo,
    no_tool: list[NoToolRow],
    tool: list[ToolRow],
    overhead: OverheadResult,
    levels: list[LevelResult],
    voice: VoiceResult,
) -> str:
    b = info.backend
    out: list[str] = [
        "# Benchmarks",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine()}",
        f"- Command: `{info.command}`"
        + (" (quick smoke run: numbers are not meaningful)" if info.quick else ""),
        f"- Scripted backend: time to first token {b.ttft * 1000:.0f} ms, "
        f"{b.token_delay * 1000:.0f} ms between tokens (one word per SSE chunk), "
        f"tool time {b.tool_seconds * 1000:.0f} ms; {info.reps} turns per variant, "
        "variants interleaved turn by turn, order rotated each repetition",
        f"- Wall time of the run: {info.elapsed_s:.0f} s",
        "",
        "The LLM server (`tests/servers/openai_server.py`) runs in a child process "
        "(`bench/server_proc.py`), so it shares neither the event loop nor the GIL with "
        "the code measured. Its timestamps and ours are `time.perf_counter()`, on Linux "
        "CLOCK_MONOTONIC, one clock across processes.",
        "",
    ]

    # 1
    ours = next((r for r in no_tool if r.level == "session" and r.variant == OURS_DEFAULT), None)
    out += [
        "## 1. No-tool turn: time to first text out / server's time to first token",
        "",
        "Tools are offered; the model answers without them. Time to first text out runs "
        "from the start of the turn (`session.run(user_input=...)`, or the `llm_node` "
        "call) to the first words out (the session's text output, or the node's first "
        "yield). The server's TTFT is its own record: request received -> first "
        "content chunk written (non-streamed: -> first token produced). `session` is a "
        "real livekit `AgentSession` in text mode (no room, no audio); `llm_node` is the "
        "node alone.",
        "",
        table(
            [
                "level",
                "variant",
                "ratio p50",
                "ratio p95",
                "added ms p50",
                "added ms p95",
                "server TTFT ms p50",
            ],
            [
                [
                    r.level,
                    r.variant,
                    f3(Summary.of(r.ratios).p50),
                    f3(Summary.of(r.ratios).p95),
                    f1(Summary.of(r.added_ms).p50),
                    f1(Summary.of(r.added_ms).p95),
                    f1(Summary.of(r.server_ttft_ms).p50),
                ]
                for r in no_tool
            ],
        ),
        "",
    ]
    if ours is not None:
        p50 = Summary.of(ours.ratios).p50
        out += [
            f"Goal: ratio <= 1.05 for our default in a session: p50 {p50:.3f}, "
            f"{verdict(p50 <= 1.05)}. The added milliseconds do not depend on the "
            "server's TTFT; the ratio does (a slower model makes it smaller).",
            "",
        ]

    # 2
    out += [
        "## 2. Tool turn: first text out vs tool-call complete + tool time + speaking-pass TTFT",
        "",
        "One tool call (the server streams it, or sends it whole in blocking mode), the "
        "tool runs, then the speaking pass. Ideal first words = tool-call response "
        "complete (server) + the tool's own run time + the speaking pass's server TTFT. "
        "Overhead = actual - ideal, split into: response complete -> tool starts, tool "
        "ends -> speaking request arrives, first token written -> first text out.",
        "",
        table(
            [
                "variant",
                "overhead ms p50",
                "overhead ms p95",
                "-> tool start p50",
                "tool -> next request p50",
                "first token -> out p50",
            ],
            [
                [
                    r.variant,
                    f1(Summary.of(r.overhead_ms).p50),
                    f1(Summary.of(r.overhead_ms).p95),
                    f1(Summary.of(r.before_tool_ms).p50),
                    f1(Summary.of(r.after_tool_ms).p50),
                    f1(Summary.of(r.delivery_ms).p50),
                ]
                for r in tool
            ]
            + [
                [
                    "TODO: filler sentence start for a slow tool",
                    "not measured yet (the filler itself is on main and tested)",
                    "",
                    "",
                    "",
                    "",
                ]
            ],
        ),
        "",
    ]
    ours_tool = next((r for r in tool if r.variant == OURS_DEFAULT), None)
    if ours_tool is not None:
        p50 = Summary.of(ours_tool.overhead_ms).p50
        out += [f"Goal: <= +10 ms for our default: p50 {p50:.1f} ms, {verdict(p50 <= 10)}.", ""]

    # 3
    rows = {r.variant: Summary.of(r.cpu_ms) for r in overhead.rows}
    floor = next(iter(rows.values()))
    engine = list(rows.values())[-1]
    out += [
        "## 3. Engine overhead per turn (client CPU time)",
        "",
        "Method: the server is in another process, so `time.process_time()` of this "
        "process is the client's CPU alone. The same request and streamed reply "
        "(one word per chunk) are run three ways, "
        "interleaved: the bare openai SDK (the floor any Python client pays for HTTP, "
        "SSE and parsing), our provider's `chat()` (livekit's `LLMStream` around the "
        "SDK), and a whole `Turn`. Overhead = quantile of the turn - the same quantile "
        "of the floor.",
        "",
        table(
            ["variant", "CPU ms p50", "CPU ms p95", "over floor p50", "over floor p95"],
            [
                [name, f2(s.p50), f2(s.p95), f2(s.p50 - floor.p50), f2(s.p95 - floor.p95)]
                for name, s in rows.items()
            ],
        ),
        "",
        f"Goal: <= 2 ms p50 of engine overhead: {engine.p50 - floor.p50:.2f} ms, "
        f"{verdict(engine.p50 - floor.p50 <= 2)}.",
        "",
        "Where it goes, each piece of per-turn work timed alone (CPU ms, no profiler):",
        "",
        table(
            ["step", "where", "CPU ms"],
            [[r.step, f"`{r.where}`", f3(r.cpu_ms)] for r in overhead.breakdown],
        ),
        "",
        f"cProfile (CPU timer) over {overhead.profiled_turns} turns: functions with the "
        "most self time outside the SDK, HTTP client and stdlib (profiler-inflated; "
        "read as proportions):",
        "",
        table(
            ["function", "self ms/turn", "cumulative ms/turn"],
            [
                [f"`{h.function}`", f3(h.self_ms_per_turn), f2(h.cum_ms_per_turn)]
                for h in overhead.hot_spots
            ],
        ),
        "",
    ]

    # 4
    out += [
        "## 4. Concurrent text sessions in one process",
        "",
        "Each level runs in a fresh process: livekit `AgentSession`s in text mode with our "
        "`Assistant`, all started before the first turn, each saying its turns after a "
        "random pause (uniform, mean given by `--think`). Added latency = time to first "
        "text out - the server's TTFT for that very request (matched by the user text). "
        "Memory = (RSS with every session open and its history held - RSS after one "
        "warm-up session) / sessions. CPU busy = worker CPU seconds per wall second "
        "(1.0 = one core); the server process shares the same 2 cores.",
        "",
        table(
            [
                "sessions",
                "turns",
                "turns/s",
                "worker CPU busy",
                "added ms p50",
                "added ms p95",
                "first text ms p95",
                "RSS MB per session",
                "RSS MB baseline",
            ],
            [
                [
                    str(r.sessions),
                    str(r.turns),
                    f1(r.turns_per_second),
                    f2(r.cpu_busy),
                    f1(Summary.of(r.added_ms).p50),
                    f1(Summary.of(r.added_ms).p95),
                    f1(Summary.of(r.first_text_ms).p95),
                    f2(r.rss_per_session_mb),
                    f1(r.rss_baseline_mb),
                ]
                for r in levels
            ],
        ),
        "",
    ]

    out += voice_section(voice, no_tool)
    return "\n".join(out)


def voice_section(v: VoiceResult, no_tool: list[NoToolRow]) -> list[str]:
    out = ["## 5. Voice path: spoken turns through the worker's session", ""]
    if v.skipped is not None:
        return [*out, f"Skipped: {v.skipped}.", ""]
    p = v.plan
    min_delay, max_delay = v.endpointing_s
    out += [
        f"{p.turns} spoken turn{'s' if p.turns != 1 else ''}"
        + (f" (after {p.warmup} for warm-up)" if p.warmup else "")
        + " through the worker's own "
        "session (`agent.worker.build_session`, `build_agent`, `SessionObserver`), run in a "
        "process of its own that plays the job process: questions spoken by espeak-ng and "
        "played in real time in 20 ms frames (the e2e test's `PacedMicrophone`), the real "
        f"silero VAD (end of speech after {v.vad_silence_s * 1000:.0f} ms of silence), "
        f"turn detection `{Settings.model_fields['turn_detection'].default}` (STT at each "
        "pause, first clause to the TTS, preemptive generation: the defaults) with the "
        "default endpointing delay "
        f"({min_delay * 1000:.0f} ms, at most {max_delay * 1000:.0f} ms), the real Whisper "
        "server (faster-whisper-server, tiny.en, CPU, in its own process, warmed up), the "
        f"scripted LLM (time to first token {p.ttft * 1000:.0f} ms, "
        f"{p.token_delay * 1000:.0f} ms between words, a two-sentence reply) and the "
        "espeak-ng TTS server. Whisper, the LLM server and the session share the 2 cores.",
        "",
        "End of speech is livekit's own estimate (`stopped_speaking_at`: the VAD's end of "
        "speech minus the silence it waited for). Every number is livekit's except two wall "
        "clocks (`time.time()`, one clock across processes), where livekit has no number: "
        "when the VAD's silence window closed (livekit back-dates the `user_state_changed` "
        "event to the end of speech, so the moment it was emitted is taken in the handler), "
        "and when the TTS server received the first request of the reply.",
        "",
        table(
            ["stage", "source", "p50 ms", "p95 ms", "turns"],
            [
                [
                    r.stage,
                    r.source,
                    f1(Summary.of(r.values_ms).p50) if r.values_ms else "n/a",
                    f1(Summary.of(r.values_ms).p95) if r.values_ms else "n/a",
                    str(len(r.values_ms)),
                ]
                for r in v.rows
            ],
        ),
        "",
    ]
    if v.anchor_offset_ms:
        out += [
            "livekit's end of speech vs the real one (the WAV's last sample louder than "
            f"{SPEECH_LEVEL}/32768, as the microphone delivered it): p50 "
            f"{Summary.of(v.anchor_offset_ms).p50:+.0f} ms (positive: livekit's estimate is "
            "later, so every 'end of speech ->' row above is that much shorter than what the "
            "user waits).",
            "",
        ]
    out += [
        "What limits it (p50s): the turn cannot end before the transcript, and the "
        "transcript cannot start before the VAD has heard "
        f"{v.vad_silence_s * 1000:.0f} ms of silence: the VAD reports the end of speech "
        f"after {v.p50('eos_vad'):.0f} ms (the silence rounded up to silero's 32 ms windows), "
        f"then the Whisper request takes {v.p50('stt_request'):.0f} ms (tiny.en, "
        "faster-whisper's defaults: beam search 5, on the same 2 CPUs as everything else), "
        f"so the transcript is there {v.p50('eos_transcript'):.0f} ms after the end of "
        f"speech. The endpointing delay ({min_delay * 1000:.0f} ms from the end of speech) "
        "has run out by then, so it costs nothing: the turn ends "
        f"{v.p50('transcript_turn'):.1f} ms after the transcript. The LLM adds its time to "
        f"first token ({v.p50('server_ttft'):.0f} ms, scripted) and the sentence tokenizer "
        f"waits {v.p50('text_tts'):.0f} ms for the first sentence to be complete (a faster "
        "model, or a shorter first sentence, shortens it) before the first TTS request; "
        f"espeak-ng answers in {v.p50('tts_ttfb'):.0f} ms (a neural TTS on CPU takes far "
        "longer). Whisper on shared CPUs is also the noisy part: a run with other jobs "
        "busy on the machine saw single requests take 10 s.",
        "",
    ]
    node = next((r for r in v.rows if r.key == "node_ttft"), None)
    served = next((r for r in v.rows if r.key == "server_ttft"), None)
    if node and served and node.values_ms and served.values_ms:
        ratio = Summary.of(node.values_ms).p50 / Summary.of(served.values_ms).p50
        section1 = next(
            (r for r in no_tool if r.level == "llm_node" and r.variant == OURS_DEFAULT), None
        )
        out += [
            f"Our engine in the voice session: first text out of `llm_node` / the server's "
            f"TTFT, p50 {ratio:.3f}"
            + (
                f" (section 1, `llm_node` level: {Summary.of(section1.ratios).p50:.3f})"
                if section1 is not None
                else ""
            )
            + ".",
            "",
        ]
    if v.heard:
        out += [
            "What Whisper heard (the LLM got these as the user's turns): "
            + "; ".join(f'"{h}"' for h in v.heard[:6])
            + ("; ..." if len(v.heard) > 6 else ""),
            "",
        ]
    out += [
        "Memory. The session process: RSS before its session (worker imported, silero "
        "loaded: what `prewarm` leaves) and after its spoken turns. The idle worker: "
        "`voice-agent start` pointed at a closed LiveKit port, measured during its retry "
        "window once livekit's process pool has prewarmed its idle job processes (one per "
        "CPU, livekit's default for `start`): livekit starts that pool before it first "
        "connects, so the tree is what an idle worker holds, without the websocket. Job "
        "processes are forked from livekit's forkserver, which imported the plugins and "
        "`agent.worker`, so most of their pages are shared copy-on-write: RSS counts those "
        "in every process, PSS (from /proc/PID/smaps_rollup) splits them, and the PSS of "
        "the tree adds up to what it costs the machine.",
        "",
        table(
            ["process", "RSS MB", "PSS MB"],
            [[m.what, f1(m.rss_mb), "" if m.pss_mb is None else f1(m.pss_mb)] for m in v.memory],
        ),
        "",
        "The session process is a fresh Python process, not forked from the forkserver, "
        "so its RSS holds only what the session imports; a real job process also carries "
        "what the forkserver preloaded (every installed livekit plugin), shared with its "
        "siblings. What a session adds is the growth: about "
        f"{_growth(v):.0f} MB over its turns, on top of an idle job process.",
        "",
        f"Wall time of this section: {v.wall_s:.0f} s.",
        "",
    ]
    return out


def _growth(v: VoiceResult) -> float:
    session = [m.rss_mb for m in v.memory if m.what.startswith("session process")]
    return session[-1] - session[0] if len(session) > 1 else float("nan")
