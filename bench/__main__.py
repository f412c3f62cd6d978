"""`python -m bench [SECTION ...]`: run the benchmarks, print the report, write
BENCHMARKS.md and bench/results.json.

A section is a module with `run` and `render` (see `bench/sections.py`); add one by
appending its `SECTION` to `SECTIONS`. Its number in the report is its place here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from testing.servers.openai_server import text_reply

from . import (
    capacity,
    load,
    no_tool,
    overhead,
    report,
    sessions,
    soak,
    tool_turn,
    tools_bench,
    voice_report,
)
from .common import REPLY, quiet_logging
from .plan import FULL, QUICK, Plan
from .sections import Context, Section
from .server_proc import RemoteLLMServer

SECTIONS: list[Section] = [
    no_tool.SECTION,
    tool_turn.SECTION,
    overhead.SECTION,
    sessions.SECTION,
    voice_report.SECTION,
    tools_bench.SECTION,
    soak.SECTION,
    load.SECTION,
    capacity.SECTION,
]
BY_NAME = {s.name: s for s in SECTIONS}
RESULTS = Path(__file__).resolve().parent / "results.json"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Time to first words, engine overhead, sessions per worker, and more.",
    )
    parser.add_argument(
        "sections",
        nargs="*",
        metavar="SECTION",
        help=f"sections to run, by name (default: all): {', '.join(BY_NAME)}",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few repetitions of everything (smoke run)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="Markdown report path (default: BENCHMARKS.md; --quick writes none unless given); "
        "results.json goes next to it (default: bench/results.json)",
    )
    parser.add_argument("--reps", type=int, help="turns per variant in the no-tool/tool sections")
    parser.add_argument("--ttft-ms", type=float, help="the scripted server's time to first token")
    parser.add_argument(
        "--voice-turns", type=int, help="spoken turns measured in the voice section (0: skip it)"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.sections if name not in BY_NAME]
    if unknown:
        parser.error(f"unknown section {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    return args


def plan_for(args: argparse.Namespace) -> Plan:
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
    return plan


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    plan = plan_for(args)
    chosen = [
        (number, s)
        for number, s in enumerate(SECTIONS, start=1)
        if not args.sections or s.name in args.sections
    ]
    out = args.out if args.out is not None else (None if args.quick else Path("BENCHMARKS.md"))
    command = (
        "python -m bench" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    )

    quiet_logging()
    date, started, load_at_start = datetime.now(UTC), time.perf_counter(), os.getloadavg()[0]
    default = text_reply(REPLY, ttft=plan.backend.ttft, token_delay=plan.backend.token_delay)
    with RemoteLLMServer(default=default) as server:
        ctx = Context(plan=plan, server=server)
        for k, (_, section) in enumerate(chosen, start=1):
            print(f"{k}/{len(chosen)} {section.name} ...", file=sys.stderr, flush=True)
            server.reset()
            ctx.results[section.name] = section.run(ctx)

    info = report.RunInfo(
        command=command,
        date=date,
        load=(load_at_start, os.getloadavg()[0]),
        elapsed_s=time.perf_counter() - started,
    )
    text = report.render(info, chosen, ctx)
    print(text)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
        results = RESULTS if args.out is None else out.with_name("results.json")
        report.write_results(results, info, chosen, ctx)
        print(f"\nwritten to {out} and {results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
