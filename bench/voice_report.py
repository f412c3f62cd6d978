"""Section: spoken turns through the worker's session (measured in `bench/voice.py`)."""

from __future__ import annotations

import time
from collections.abc import Mapping

from . import no_tool, voice_latency
from .sections import Context, p50, p50_p95, summary, table
from .voice import STAGES, VoiceResult, measure
from .voice_session import SPEECH_LEVEL, espeak_missing

NAME = "voice"
TITLE = "Voice path: spoken turns through the worker's session"


def run(ctx: Context) -> VoiceResult:
    started, plan = time.perf_counter(), ctx.plan.voice
    if plan.turns <= 0:
        skipped = (
            "no spoken turns asked for (`--quick` skips this section: one spoken turn adds "
            "about 25 s; `--quick --voice-turns 1` runs one)"
        )
        return VoiceResult(plan, skipped=skipped)
    if (missing := espeak_missing()) is not None:
        return VoiceResult(plan, skipped=missing)
    result = measure(ctx.server, plan)
    result.wall_s = time.perf_counter() - started
    if rows := ctx.results.get(no_tool.NAME):
        ours = no_tool.ours(rows, "llm_node")
        result.no_tool_ratio = None if ours is None else p50(ours.ratios)
    result.side_by_side = voice_latency.run(plan)
    return result


def render(v: VoiceResult) -> list[str]:
    if v.skipped is not None:
        return [f"Skipped: {v.skipped}.", ""]
    side = []
    if v.side_by_side is not None:
        side = [voice_latency.HEADING, "", *voice_latency.render(v.side_by_side)]
    return [*_stages(v), *_limits(v), *_memory(v), *side]


def _stages(v: VoiceResult) -> list[str]:
    """What ran, and each stage's latency from livekit's own numbers."""
    p = v.plan
    min_delay, max_delay = v.endpointing_s
    out = [
        f"{p.turns} spoken turn{'s' if p.turns != 1 else ''}"
        + (f" (after {p.warmup} for warm-up)" if p.warmup else "")
        + " through the worker's own "
        "session (`build_session`, `build_agent`, `SessionObserver`), run in a "
        "process of its own that plays the job process: questions spoken by espeak-ng and "
        "played in real time in 20 ms frames (the e2e test's `PacedMicrophone`), the real "
        f"silero VAD (end of speech after {v.vad_silence_s * 1000:.0f} ms of silence), "
        "turn detection `vad` with the default endpointing delay "
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
            "stage | source | p50 ms | p95 ms | turns",
            [
                [stage, source, *_p50_p95_or_na(v.stages_ms[key]), len(v.stages_ms[key])]
                for key, stage, source in STAGES
            ],
        ),
        "",
    ]
    if v.anchor_offset_ms:
        out += [
            "livekit's end of speech vs the real one (the WAV's last sample louder than "
            f"{SPEECH_LEVEL}/32768, as the microphone delivered it): p50 "
            f"{p50(v.anchor_offset_ms):+.0f} ms (positive: livekit's estimate is "
            "later, so every 'end of speech ->' row above is that much shorter than what the "
            "user waits).",
            "",
        ]
    return out


def _p50_p95_or_na(values: list[float]) -> list[str]:
    return p50_p95(values) if values else ["n/a", "n/a"]


def _limits(v: VoiceResult) -> list[str]:
    """Where the time goes, and how our engine compares with the no-tool section."""
    min_delay, _ = v.endpointing_s
    out = [
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
    if v.stages_ms["node_ttft"] and v.stages_ms["server_ttft"]:
        out += [
            f"Our engine in the voice session: first text out of `llm_node` / the server's "
            f"TTFT, p50 {v.p50('node_ttft') / v.p50('server_ttft'):.3f}"
            + (
                f" (the no-tool section, `llm_node` level: {v.no_tool_ratio:.3f})"
                if v.no_tool_ratio is not None
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
    return out


def _memory(v: VoiceResult) -> list[str]:
    session = [m.rss_mb for m in v.memory if m.what.startswith("session process")]
    return [
        "Memory. The session process: RSS before its session (worker imported, silero "
        "loaded: what `prewarm` leaves) and after its spoken turns. The idle worker: "
        "`voice-agent start` pointed at a closed LiveKit port, measured during its retry "
        "window once livekit's process pool has prewarmed its idle job processes (one per "
        "CPU, livekit's default for `start`): livekit starts that pool before it first "
        "connects, so the tree is what an idle worker holds, without the websocket. Job "
        "processes are forked from livekit's forkserver, which imported the plugins and "
        "`agent.worker.entrypoint`, so most of their pages are shared copy-on-write: RSS "
        "counts those in every process, PSS (from /proc/PID/smaps_rollup) splits them, and the "
        "PSS of the tree adds up to what it costs the machine.",
        "",
        table(
            "process | RSS MB | PSS MB",
            [
                [m.what, f"{m.rss_mb:.1f}", "" if m.pss_mb is None else f"{m.pss_mb:.1f}"]
                for m in v.memory
            ],
        ),
        "",
        "The session process is a fresh Python process, not forked from the forkserver, "
        "so its RSS holds only what the session imports; a real job process also carries "
        "what the forkserver preloaded (every installed livekit plugin), shared with its "
        "siblings. What a session adds is the growth: about "
        f"{session[-1] - session[0]:.0f} MB over its turns, on top of an idle job process.",
        "",
        f"Wall time of this section: {v.wall_s:.0f} s.",
        "",
    ]


def numbers(v: VoiceResult) -> Mapping[str, object]:
    if v.skipped is not None:
        return {"skipped": v.skipped}
    return {
        "stages_ms": {key: summary(values) for key, values in v.stages_ms.items()},
        "memory_mb": {m.what: {"rss": m.rss_mb, "pss": m.pss_mb} for m in v.memory},
        "wall_s": round(v.wall_s, 1),
        # eos_to_first_audio_ms.{ours,livekit_default}.{p50,p95} and
        # premature_end_of_turn_rate.{ours,livekit_default}
        **(voice_latency.numbers(v.side_by_side) if v.side_by_side else {}),
    }
