"""The benchmark runner's quick mode still runs end to end (so bench/ does not rot).

The capacity and room sections are left out here: `tests/test_bench_capacity.py` runs
capacity (its run, render and numbers) on two levels, and `tests/room/test_bench_room.py`
measures a turn in a real room and renders it; running them again here would double their
cost.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import BY_NAME, SECTIONS, main


@pytest.mark.timeout(600)
def test_quick_bench_run_writes_a_report_and_results_with_every_other_section(
    tmp_path: Path,
) -> None:
    out = tmp_path / "BENCHMARKS.md"
    ran = [s for s in SECTIONS if s.NAME not in ("capacity", "room")]

    assert main(["--quick", "--out", str(out), *(s.NAME for s in ran)]) == 0

    report = out.read_text(encoding="utf-8")
    for section in ran:
        assert f"## {SECTIONS.index(section) + 1}. {section.TITLE}" in report
    assert "| session | ours, streamed tool pass (default) |" in report
    assert "| llm_node | livekit default llm_node (provider.chat) |" in report
    assert "nan" not in report  # every variant produced samples
    assert "TODO" not in report
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert {"date", "machine", *(s.NAME for s in ran)} <= results.keys()
    assert all(results[s.NAME] for s in ran)  # every section wrote numbers
    assert results["tool"]["filler_late_ms"]["n"] >= 1
    assert results["soak"]["silent_turns"] == 0
    assert results["faults"]["silent_turns"] == 0


@pytest.mark.timeout(300)
def test_sections_run_alone_by_name_and_out_may_be_a_folder(tmp_path: Path) -> None:
    assert main(["--quick", "--out", str(tmp_path), "soak"]) == 0

    report = (tmp_path / "BENCHMARKS.md").read_text(encoding="utf-8")
    number = SECTIONS.index(BY_NAME["soak"]) + 1
    assert f"## {number}. {BY_NAME['soak'].TITLE}" in report
    assert "## 1. " not in report
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert "soak" in results and "no-tool" not in results
