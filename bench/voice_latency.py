"""`python -m bench.voice_latency`: the voice section's side by side alone, into
bench/results.json (under `voice`) and its part of BENCHMARKS.md."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from typing import Any

from .sections import FULL, ROOT, machine
from .voice import HEADING, render_side_by_side, side_by_side, side_by_side_numbers
from .voice_session import STT_NAMES


def main(argv: list[str] | None = None) -> int:
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
