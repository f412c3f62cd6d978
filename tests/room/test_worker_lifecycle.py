"""The worker's life against a real LiveKit server: dispatch by agent name, LiveKit going
away and coming back, and SIGTERM in the middle of a turn.

They run on the shared server and worker (its LIVEKIT_AGENT_NAME is `AGENT_NAME`); the
last two stop them, and the `stack` fixture starts them again for any test after.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from testing.polling import until
from testing.room import GREETING, Stack
from tests.room import script
from tests.room.helpers import greeted, room_name

pytestmark = [pytest.mark.livekit_server, pytest.mark.timeout(180)]


async def test_with_an_agent_name_only_a_token_with_its_dispatch_brings_the_agent(
    stack: Stack,
) -> None:
    async with (
        stack.participant(room_name("dispatched")) as sent,
        stack.participant(room_name("plain"), agent_name="") as plain,
    ):
        started = time.monotonic()
        await until(lambda: sent.agent is not None, within=60, what="the dispatched agent")
        took = time.monotonic() - started
        # the plain room had as long as the dispatched one needed, and more: still alone
        await until(lambda: time.monotonic() - started > 2 * took + 3, within=120, what="time")
        assert plain.agent is None
        assert "ask me anything" in (await greeted(sent, stack)).lower()


async def test_livekit_restart_makes_the_worker_unready_then_ready_and_a_new_room_works(
    stack: Stack,
) -> None:
    worker = stack.worker
    assert worker is not None and worker.ready_status() == 200
    # a room its participant has just left, which LiveKit has not closed yet, goes down
    # with the server: its job must not outlive it (it would hold the drain for good)
    async with stack.participant(room_name("before")) as p:
        await greeted(p, stack)
    stack.livekit.stop()
    await until(lambda: worker.ready_status() == 503, within=30, what="/ready 503")
    stack.livekit.start()
    restarted = time.monotonic()
    await until(lambda: worker.ready_status() == 200, within=60, what="/ready 200 again")
    print(f"\nreconnect: /ready 200 {time.monotonic() - restarted:.2f} s after LiveKit answered")
    await until(
        lambda: worker.report()["active_sessions"] == 0, within=30, what="the old job's end"
    )
    # a new room: the agent joins it and is heard
    async with stack.participant(room_name("after")) as p:
        assert "ask me anything" in (await greeted(p, stack)).lower()
        await until(lambda: GREETING in p.finals(mine=False), within=10, what="its transcript")


async def test_sigterm_during_a_turn_lets_the_turn_finish_then_the_worker_exits_0(
    stack: Stack, wavs: dict[str, Path]
) -> None:
    worker = stack.worker
    assert worker is not None
    async with stack.participant(room_name("sigterm")) as p:
        await greeted(p, stack)
        spoken = await p.say(wavs["capital"])
        await until(
            lambda: p.heard.first_loud_after(spoken.ended_at) is not None,
            within=60,
            what="the answer's first sound",
        )
        worker.terminate()
        await until(lambda: worker.ready_status() == 503, within=10, what="/ready 503 (draining)")
        # the answer goes on to its end, heard in full
        heard = await p.utterance_after(spoken.ended_at, within=60, what="the whole answer")
        assert heard.seconds > 1.5
        await until(lambda: script.CAPITAL_ANSWER in p.finals(mine=False), within=10, what="text")
        assert worker.running  # still draining: the room is live
    # the room is over once its participant has left: the worker drains and exits 0
    assert worker.wait(timeout=90) == 0, worker.log()
