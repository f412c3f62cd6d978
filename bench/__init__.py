"""Benchmarks: `python -m bench [SECTION ...] [--quick]` writes BENCHMARKS.md and results.json."""
