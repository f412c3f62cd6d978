"""`python -m bench.voice_latency`: the voice section's side by side alone, into
bench/results.json (under `voice`) and its part of BENCHMARKS.md."""

import sys

from .voice import side_by_side_main

if __name__ == "__main__":
    sys.exit(side_by_side_main())
