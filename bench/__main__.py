"""`python -m bench [SECTION ...]`: the sections' report into BENCHMARKS.md, numbers in JSON."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from testing.servers.openai_server import text_reply

from . import capacity, load, no_tool, overhead, room, sessions, voice
from .sections import FULL, QUICK, REPLY, Context, Plan, Section, machine, quiet_logs
from .server_proc import RemoteLLMServer

# the registry: a section's number in the report is its place here
SECTIONS: list[Section] = [no_tool, no_tool.TOOL, overhead, sessions, voice, overhead.MCP]
SECTIONS += [load.SOAK, load, capacity, room]
BY_NAME = {s.NAME: s for s in SECTIONS}
RESULTS = Path(__file__).resolve().parent / "results.json"


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Plan]:
    """The command line, and the plan it asks for."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sections = f"sections to run (default: all): {', '.join(BY_NAME)}"
    parser.add_argument("sections", nargs="*", metavar="SECTION", help=sections)
    parser.add_argument("--quick", action="store_true", help="a few repetitions (smoke run)")
    # --quick writes no report unless given one
    out = "report path or folder (default: BENCHMARKS.md); results.json goes next to it"
    parser.add_argument("--out", type=Path, help=out)
    parser.add_argument("--reps", type=int, help="turns per variant in the no-tool/tool sections")
    parser.add_argument("--ttft-ms", type=float, help="the scripted server's time to first token")
    parser.add_argument("--voice-turns", type=int, help="spoken turns in `voice` (0: none)")
    parser.add_argument("--levels", help="capacity: Ns (1,5,10,20,40; embedded 1,2,3,4,6,8,10,12)")
    parser.add_argument("--capacity-turns", type=int, help="capacity: measured turns a session")
    parser.add_argument("--embedded-stt", action="store_true", help="capacity: Moonshine in jobs")
    args = parser.parse_args(argv)
    if unknown := [name for name in args.sections if name not in BY_NAME]:
        parser.error(f"unknown section {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    if args.out is not None and args.out.is_dir():
        args.out = args.out / "BENCHMARKS.md"
    plan = QUICK if args.quick else FULL
    if args.reps:
        plan = replace(plan, reps=args.reps)
    if args.ttft_ms:
        ttft = args.ttft_ms / 1000
        plan = replace(plan, ttft=ttft, voice=replace(plan.voice, ttft=ttft))
    if args.voice_turns is not None:
        plan = replace(plan, voice=replace(plan.voice, turns=args.voice_turns))
    capacity: dict[str, Any] = {"embedded_stt": True} if args.embedded_stt else {}
    if args.levels and 1 not in (levels := tuple(int(n) for n in args.levels.split(","))):
        parser.error("--levels must hold 1: the lone session's p95 is the budget's base")
    if args.levels:
        capacity["levels"] = levels
    if args.capacity_turns:
        capacity |= {"measured_turns": args.capacity_turns, "lone_turns": args.capacity_turns}
    return args, replace(plan, capacity=capacity)


def run(plan: Plan, sections: Sequence[Section]) -> dict[str, Any]:
    """Each section in turn against one scripted LLM server; their results by name."""
    quiet_logs()
    default = text_reply(REPLY, ttft=plan.ttft, token_delay=plan.token_delay)
    with RemoteLLMServer(default=default) as server:
        ctx = Context(plan=plan, server=server)
        for k, section in enumerate(sections, start=1):
            print(f"{k}/{len(sections)} {section.NAME} ...", file=sys.stderr, flush=True)
            server.reset()
            out = section.run(ctx)
            ctx.results[section.NAME] = asyncio.run(out) if inspect.iscoroutine(out) else out
    return ctx.results


def report(plan: Plan, results: dict[str, Any], run_info: dict[str, Any]) -> str:
    """The header (what ran where), then each section's render under its registry number."""
    load = run_info["load_avg_1min"]
    blocks = [
        "# Benchmarks",
        f"- Date: {run_info['date'][:16].replace('T', ' ')} UTC\n"
        f"- Machine: {run_info['machine']}\n"
        f"- Command: `{run_info['command']}`"
        + (" (quick smoke run: numbers are not meaningful)" if plan.quick else "")
        + f"\n- Scripted backend: first token {plan.ttft * 1000:.0f} ms, "
        f"{plan.token_delay * 1000:.0f} ms between tokens, tool time "
        f"{plan.tool_seconds * 1000:.0f} ms; {plan.reps} turns per variant\n"
        f"- Wall time of the run: {run_info['wall_s']:.0f} s; load average (1 min) at its "
        f"start / end: {load[0]:.1f} / {load[1]:.1f}",
        "How each section measures, and what limits it: [docs/benchmarks.md](docs/benchmarks.md).",
    ]
    for number, section in enumerate(SECTIONS, start=1):
        if section.NAME in results:
            blocks += [f"## {number}. {section.TITLE}", *section.render(results[section.NAME])]
    return "\n\n".join(blocks)


def numbers(results: dict[str, Any], run_info: dict[str, Any], old: dict[str, Any]) -> str:
    """results.json: the run's `date`, `machine` and so on (a run of some sections keeps the last
    full run's), then each section's numbers, key by key over `old`'s (what the file held)."""
    data = (run_info | old) if old and len(results) < len(SECTIONS) else (old | run_info)
    for s in (s for s in SECTIONS if s.NAME in results):
        data[s.NAME] = data.get(s.NAME, {}) | s.numbers(results[s.NAME])
    # NaN (a quantile of no samples) as null: JSON has no NaN
    finite = json.loads(json.dumps(data), parse_constant=lambda _: None)
    return json.dumps(finite, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    args, plan = parse(argv)
    command = " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)])
    date, started, load = datetime.now(UTC), time.perf_counter(), os.getloadavg()[0]
    results = run(plan, [s for s in SECTIONS if not args.sections or s.NAME in args.sections])
    run_info = {
        "date": f"{date:%Y-%m-%dT%H:%M:%SZ}",
        "machine": machine(),
        "command": command,
        "quick": plan.quick,
        "wall_s": round(time.perf_counter() - started, 1),
        "load_avg_1min": [load, os.getloadavg()[0]],  # at the run's start and end
    }
    text = report(plan, results, run_info)
    print(text)
    # a run of some sections leaves BENCHMARKS.md (the last full run's) be unless given --out
    out = args.out or (None if args.quick or args.sections else Path("BENCHMARKS.md"))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    if args.out or not args.quick:
        json_path = RESULTS if args.out is None else args.out.with_name("results.json")
        old = json.loads(json_path.read_text()) if json_path.exists() else {}
        json_path.write_text(numbers(results, run_info, old), encoding="utf-8")
        print(f"\nwritten to {json_path}" + (f" and {out}" if out else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
