"""The capacity benchmark runs end to end on a small N (its numbers are BENCHMARKS.md's), and an
embedded-STT run's numbers sit beside the scripted run's in results.json."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import cast

import pytest

import bench.__main__ as bench_main
from bench import capacity
from bench.capacity import CapacityPlan, CapacityResult, Level, measure, numbers, render
from bench.sections import FULL, Context
from bench.server_proc import RemoteLLMServer

pytestmark = pytest.mark.timeout(400)


def test_capacity_bench_measures_each_level_and_renders_the_table() -> None:
    plan = CapacityPlan(levels=(1, 2), measured_turns=1, lone_turns=1, stagger=0.5, pause=0.3)
    result = measure(plan)
    assert [lv.sessions for lv in result.levels] == [1, 2]
    for lv in result.levels:
        assert lv.turns + lv.silent_turns == lv.sessions  # one measured turn per session
        # end of speech -> first audio includes the scripted STT, LLM and TTS latencies
        assert lv.p50_ms >= (plan.stt_delay + plan.llm_ttft + plan.tts_delay) * 1000
        assert lv.p95_ms >= lv.p50_ms
        assert lv.cpu_per_session > 0 and lv.pss_per_session_mb > 10
    assert result.sessions_per_worker in (0, 1, 2)
    assert result.within_budget(result.levels[0])  # a lone session is its own baseline
    entry = numbers(result)
    assert entry["voice_sessions_per_worker"] == result.sessions_per_worker
    assert len(entry["levels"]) == 2 and not math.isnan(entry["levels"][1]["p95_ms"])
    table = "\n".join(render(result))
    assert "| 2 | 2 |" in table
    assert f"`capacity.voice_sessions_per_worker` = {result.sessions_per_worker}" in table


def _level(sessions: int, p95_ms: float) -> Level:
    return Level(
        sessions=sessions,
        turns=4 * sessions,
        p50_ms=p95_ms - 20,
        p95_ms=p95_ms,
        cpu_per_session=0.1,
        worker_cpu=0.02,
        pss_per_session_mb=200.0,
        silent_turns=0,
        other_cpu=0.0,
    )


@pytest.mark.timeout(30)
def test_an_embedded_stt_run_and_a_scripted_one_keep_each_others_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted = CapacityResult(plan=CapacityPlan(), levels=[_level(1, 700), _level(5, 760)])
    levels = [_level(1, 600), _level(2, 650), _level(3, 900)]
    embedded = CapacityResult(plan=CapacityPlan(embedded_stt=True), levels=levels)
    results = tmp_path / "results.json"
    full_run = {"date": "2026-01-01T00:00:00Z", "command": "python -m bench", "voice": {"wer": 0.2}}
    results.write_text(json.dumps(full_run | {"capacity": numbers(scripted)}))
    monkeypatch.setattr(bench_main, "RESULTS", results)
    monkeypatch.chdir(tmp_path)  # where BENCHMARKS.md would go

    monkeypatch.setattr(bench_main, "run", lambda plan, sections: {"capacity": embedded})
    assert bench_main.main(["capacity", "--embedded-stt"]) == 0
    data = json.loads(results.read_text())
    assert data["capacity"]["voice_sessions_per_worker_embedded"] == 2  # 3 is over budget
    assert len(data["capacity"]["levels_embedded"]) == 3
    assert data["capacity"]["voice_sessions_per_worker"] == 5  # the scripted run's, kept
    assert len(data["capacity"]["levels"]) == 2
    # a run of one section keeps the other sections and the last full run's run info,
    # and leaves BENCHMARKS.md be
    assert data["voice"] == {"wer": 0.2} and data["command"] == "python -m bench"
    assert not (tmp_path / "BENCHMARKS.md").exists()

    again = CapacityResult(plan=CapacityPlan(), levels=[_level(1, 700)])
    monkeypatch.setattr(bench_main, "run", lambda plan, sections: {"capacity": again})
    assert bench_main.main(["capacity"]) == 0
    data = json.loads(results.read_text())
    assert data["capacity"]["voice_sessions_per_worker"] == 1
    assert data["capacity"]["voice_sessions_per_worker_embedded"] == 2
    assert "`capacity.voice_sessions_per_worker_embedded` = 2" in "\n".join(render(embedded))


@pytest.mark.timeout(120)
def test_an_embedded_stt_run_takes_moonshine_and_its_own_levels_and_stops_over_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    providers: list[str] = []

    def level(n: int, turns: int, env: dict[str, str], work: Path) -> Level:
        providers.append(env["STT_PROVIDER"])
        return _level(n, 600 if n < 3 else 800)

    monkeypatch.setattr(capacity, "_level", level)
    plan = replace(FULL, capacity={"embedded_stt": True})
    result = capacity.run(Context(plan=plan, server=cast(RemoteLLMServer, None)))
    assert result.plan.levels[:4] == (1, 2, 3, 4)  # not the scripted run's 1, 5, 10, ...
    assert [lv.sessions for lv in result.levels] == [1, 2, 3]  # none after the first over
    assert providers == ["moonshine"] * 3
    assert result.sessions_per_worker == 2
