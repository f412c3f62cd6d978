"""The worker's life against a real LiveKit server: dispatch by agent name, LiveKit going
away and coming back, and SIGTERM in the middle of a turn.

These tests stop the LiveKit server and the worker, so they have their own (one server,
one worker with LIVEKIT_AGENT_NAME, shared by this module; `named` starts them again
where an earlier test left them stopped).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testing.polling import until
from testing.room import Backends, Stack, VoiceWorker
from testing.servers.livekit_real import LiveKitServer
from tests.room import script
from tests.room.helpers import CANARY_ENV, ask, greeted, livekit_server, room_name

pytestmark = [pytest.mark.livekit_server, pytest.mark.timeout(180)]

AGENT_NAME = "front-desk"


@dataclass
class Named:
    """A LiveKit server and a worker with an agent name, of this module's own."""

    livekit: LiveKitServer
    backends: Backends
    workers: list[VoiceWorker]

    def stack(self) -> Stack:
        """Both running (a stopped server or an exited worker is started again)."""
        if not self.livekit.answers():
            self.livekit.start()
        if not self.workers[-1].running:
            self.workers.append(self.new_worker().start())
        return Stack(livekit=self.livekit, backends=self.backends, worker=self.workers[-1])

    def new_worker(self) -> VoiceWorker:
        env = {**CANARY_ENV, "LIVEKIT_AGENT_NAME": AGENT_NAME, "WORKER_DRAIN_TIMEOUT": "120"}
        return VoiceWorker(self.livekit, self.backends, env=env)


@pytest.fixture(scope="module")
def named(room_backends: Backends) -> Iterator[Named]:
    livekit = livekit_server()
    found = Named(livekit=livekit, backends=room_backends, workers=[])
    try:
        found.workers.append(found.new_worker().start())
        yield found
    finally:
        for worker in found.workers:
            worker.close()
        livekit.close()


async def test_with_an_agent_name_only_a_token_with_its_dispatch_brings_the_agent(
    named: Named,
) -> None:
    stack = named.stack()
    async with (
        stack.participant(room_name("dispatched"), agent_name=AGENT_NAME) as sent,
        stack.participant(room_name("plain")) as plain,
    ):
        started = time.monotonic()
        await until(lambda: sent.agent is not None, within=60, what="the dispatched agent")
        took = time.monotonic() - started
        # the plain room had as long as the dispatched one needed, and more: still alone
        await until(lambda: time.monotonic() - started > 2 * took + 3, within=120, what="time")
        assert plain.agent is None
        assert "ask me anything" in (await greeted(sent, stack)).lower()


async def test_livekit_restart_makes_the_worker_unready_then_ready_and_a_new_room_works(
    named: Named, wavs: dict[str, Path]
) -> None:
    stack = named.stack()
    worker = stack.worker
    assert worker is not None and worker.ready_status() == 200
    # a room its participant has just left, which LiveKit has not yet closed, goes down
    # with the server: its job must not outlive it (it would hold the drain for good)
    async with stack.participant(room_name("before"), agent_name=AGENT_NAME) as p:
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
    async with stack.participant(room_name("after"), agent_name=AGENT_NAME) as p:
        await greeted(p, stack)
        heard = await ask(p, stack, wavs["tokyo"])
        assert "tokyo" in heard, heard


async def test_sigterm_during_a_turn_lets_the_turn_finish_then_the_worker_exits_0(
    named: Named, wavs: dict[str, Path]
) -> None:
    stack = named.stack()
    worker = stack.worker
    assert worker is not None
    async with stack.participant(room_name("sigterm"), agent_name=AGENT_NAME) as p:
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
