"""A small version of `bench/load.py` (50 sessions x 20 turns) that CI runs every time."""

from __future__ import annotations

import pytest

from bench.load import run_load


@pytest.mark.timeout(120)  # a turn the 1 s backend timeout did not end hangs and fails here
async def test_concurrent_sessions_with_faults_are_never_silent_and_leave_nothing_behind() -> None:
    result = await run_load(sessions=10, turns=6, fault_rate=0.15, timeout=1.0, seed=3)
    assert len(result.turn_seconds) == 60
    assert sum(result.faults_injected.values()) >= 5  # the faults really happened
    assert result.silent_turns == 0
    # every injected fault ended its turn in words: an apology, or a fallback reply
    assert result.apologies + result.fallbacks >= 1
    assert result.leaked_tasks == 0
    assert result.sockets_after <= result.sockets_before
    assert result.rss_after_mb - result.rss_before_mb < 64
