"""Benchmarks: `python -m bench [SECTION ...] [--quick]` writes BENCHMARKS.md and results.json.

A section is one module (`bench/sections.py` says what it holds: `NAME`, `TITLE`, `run`,
`render`, `numbers`). To add one, write its module and put it in `SECTIONS` in
`bench/__main__.py`: its place there is its number in the report. Its sizes for a full run
and for `--quick` stay in the module (`ctx.sized`); the run's shared plan is in sections.py.
"""
