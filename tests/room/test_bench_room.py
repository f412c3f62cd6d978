"""`bench/room.py`'s measure, on the shared stack: latency as a participant hears it,
beside what the agent reports for the same turns."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import room
from testing.room import Stack

pytestmark = [pytest.mark.livekit_server, pytest.mark.timeout(150)]


async def test_room_bench_measures_heard_latency_beside_the_agents_own(
    stack: Stack, wavs: dict[str, Path]
) -> None:
    turns = await room.measure(stack, turns=1, question=wavs["tokyo"])
    result = room.RoomResult(turns=turns)
    numbers = room.numbers(result)
    print(f"\nroom bench, 1 turn: {numbers}")
    assert len(turns) == 1
    # the turn was heard after its question ended, and the agent reported it
    assert all(t.heard_ms > 0 for t in turns), turns
    assert all(t.agent_ms is not None and t.agent_ms > 0 for t in turns), turns
    assert set(numbers) == {"eos_to_first_audio_heard_ms", "agent_reported_ms"}
    assert numbers["eos_to_first_audio_heard_ms"]["n"] == 1  # type: ignore[index]
    report = "\n".join(room.render(result))
    assert "| end of speech -> first agent audio heard |" in report
    assert "nan" not in report
