"""The capacity benchmark runs end to end on a small N (its numbers are BENCHMARKS.md's)."""

from __future__ import annotations

import math

import pytest

from bench.capacity import CapacityPlan, measure, numbers, render

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
