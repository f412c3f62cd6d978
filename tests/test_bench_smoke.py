"""The benchmark runner's quick mode still runs end to end (so bench/ does not rot)."""

from __future__ import annotations

from pathlib import Path

from bench.__main__ import main


def test_quick_bench_run_writes_a_report_with_every_section(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"

    assert main(["--quick", "--out", str(out)]) == 0

    report = out.read_text(encoding="utf-8")
    for heading in (
        "## 1. No-tool turn",
        "## 2. Tool turn",
        "## 3. Engine overhead per turn",
        "## 4. Concurrent text sessions",
        "## 5. Voice path",
    ):
        assert heading in report
    assert "| session | ours, streamed tool pass (default) |" in report
    assert "| llm_node | livekit default llm_node (provider.chat) |" in report
    assert "nan" not in report  # every variant produced samples
