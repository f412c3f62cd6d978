"""`python -m bench`: run the benchmarks, print the tables, write BENCHMARKS.md."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from tests.servers.openai_server import text_reply

from . import first_text, overhead, report, sessions, voice, voice_latency
from .common import REPLY, quiet_logging
from .first_text import Backend
from .server_proc import RemoteLLMServer
from .voice import VoicePlan


@dataclass(frozen=True, slots=True)
class Plan:
    backend: Backend
    reps: int
    warmup: int
    cpu_reps: int
    profile_turns: int
    cpu_token_delay: float
    levels: list[int]
    min_turns: int
    think: float
    voice: VoicePlan


FULL = Plan(
    backend=Backend(ttft=0.15, token_delay=0.02, tool_seconds=0.05),
    reps=40,
    warmup=3,
    cpu_reps=150,
    profile_turns=40,
    cpu_token_delay=0.002,
    levels=[1, 10, 50, 100],
    min_turns=30,
    think=0.5,
    # the scripted LLM as in sections 1-2; 12 spoken turns after one for warm-up
    voice=VoicePlan(turns=12, warmup=1, ttft=0.15, token_delay=0.02),
)
QUICK = Plan(
    backend=Backend(ttft=0.02, token_delay=0.001, tool_seconds=0.005),
    reps=2,
    warmup=1,
    cpu_reps=3,
    profile_turns=2,
    cpu_token_delay=0.0,
    levels=[1, 3],
    min_turns=3,
    think=0.02,
    # section 5 is skipped: even one spoken turn adds about 25 s (the Whisper server, a
    # session process and a real-time utterance); `--voice-turns 1` runs one
    voice=VoicePlan(turns=0, warmup=0, ttft=0.02, token_delay=0.001, idle_worker=False),
)


async def run_async(
    plan: Plan, server: RemoteLLMServer
) -> tuple[list[first_text.NoToolRow], list[first_text.ToolRow], overhead.OverheadResult]:
    quiet_logging()
    print("1/5 no-tool turn ...", file=sys.stderr, flush=True)
    no_tool = await first_text.no_tool_turn(
        server, plan.backend, reps=plan.reps, warmup=plan.warmup
    )
    print("2/5 tool turn ...", file=sys.stderr, flush=True)
    tool = await first_text.tool_turn(server, plan.backend, reps=plan.reps, warmup=plan.warmup)
    print("3/5 engine CPU overhead ...", file=sys.stderr, flush=True)
    cpu = await overhead.measure(
        server,
        reps=plan.cpu_reps,
        warmup=plan.warmup,
        profile_turns=plan.profile_turns,
        token_delay=plan.cpu_token_delay,
    )
    return no_tool, tool, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Time to first words, engine overhead, sessions per worker.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few repetitions of everything (smoke run)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="Markdown report path (default: BENCHMARKS.md; --quick writes none unless given)",
    )
    parser.add_argument("--reps", type=int, help="turns per variant in sections 1 and 2")
    parser.add_argument("--ttft-ms", type=float, help="the scripted server's time to first token")
    parser.add_argument(
        "--voice-turns", type=int, help="spoken turns measured in section 5 (0: skip it)"
    )
    args = parser.parse_args(argv)

    plan = QUICK if args.quick else FULL
    if args.reps:
        plan = replace(plan, reps=args.reps)
    if args.ttft_ms:
        ttft = args.ttft_ms / 1000
        plan = replace(
            plan, backend=replace(plan.backend, ttft=ttft), voice=replace(plan.voice, ttft=ttft)
        )
    if args.voice_turns is not None:
        plan = replace(plan, voice=replace(plan.voice, turns=args.voice_turns))
    out = args.out if args.out is not None else (None if args.quick else Path("BENCHMARKS.md"))
    command = (
        "python -m bench" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    )

    started = time.perf_counter()
    default = text_reply(REPLY, ttft=plan.backend.ttft, token_delay=plan.backend.token_delay)
    with RemoteLLMServer(default=default) as server:
        no_tool, tool, cpu = asyncio.run(run_async(plan, server))
        print("4/5 concurrent sessions ...", file=sys.stderr, flush=True)
        levels = sessions.measure(server, plan.levels, min_turns=plan.min_turns, think=plan.think)
        print("5/5 voice path ...", file=sys.stderr, flush=True)
        voice_result = voice.measure(server, plan.voice)
    latency_result = None
    if plan.voice.turns > 0:
        print("5b voice path side by side with livekit's default ...", file=sys.stderr, flush=True)
        latency_result = voice_latency.run(
            voice_latency.LatencyPlan(ttft=plan.voice.ttft, token_delay=plan.voice.token_delay)
        )

    info = report.RunInfo(
        command=command,
        quick=args.quick,
        backend=plan.backend,
        reps=plan.reps,
        elapsed_s=time.perf_counter() - started,
    )
    text = report.render(info, no_tool, tool, cpu, levels, voice_result)
    if latency_result is not None:
        text = text.rstrip("\n") + "\n\n" + voice_latency.section(latency_result).rstrip("\n")
    print(text)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
        print(f"\nwritten to {out}", file=sys.stderr)
        if latency_result is not None and not latency_result.skipped:
            voice_latency.write_results(voice_latency.results_keys(latency_result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
