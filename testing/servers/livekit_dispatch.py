"""The worker side of LiveKit's agent dispatch protocol, as livekit-server speaks it.

A worker opens a WebSocket to `/agent` and registers; the server then offers it jobs
(`AvailabilityRequest`), assigns those it accepts (`JobAssignment`) and reads the
worker's status updates (`UpdateWorkerStatus`: load, available or full). This double
records every message the worker sends, and lets a test offer jobs and read the answers:
enough to see the load, the threshold and the drain reach LiveKit, without an SFU.

The jobs it assigns point at this server; a job entrypoint that never connects to the
room (`tests.voice.held_jobs`) runs normally.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web
from livekit.protocol import agent, models

from .livekit_server import LIST_ROOMS, LiveKitPeer, registered, worker_messages

T = TypeVar("T")


class FakeLiveKitDispatch(LiveKitPeer):
    def __init__(self) -> None:
        super().__init__()
        self.received: list[agent.WorkerMessage] = []
        self._ws: web.WebSocketResponse | None = None
        self._jobs = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/agent", self._agent)
        # what `voice-agent check` and the settings view ask a LiveKit server
        app.router.add_post(LIST_ROOMS, self.list_rooms)

    async def _agent(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in worker_messages(ws):
            self.received.append(message)
            if message.HasField("register"):
                self._ws = ws
                await ws.send_bytes(registered("AW_test"))
            elif message.HasField("availability") and message.availability.available:
                await self._assign(ws, message.availability.job_id)
        return ws

    async def _assign(self, ws: web.WebSocketResponse, job_id: str) -> None:
        assignment = agent.ServerMessage()
        assignment.assignment.job.CopyFrom(_job(job_id))
        assignment.assignment.url = self.url
        assignment.assignment.token = "test-token"
        await ws.send_bytes(assignment.SerializeToString())

    # --- what a test calls (from its own thread) -------------------------------------

    def offer_job(self) -> str:
        """Ask the worker to take a new job; accepted jobs are assigned at once."""
        self._jobs += 1
        job_id = f"AJ_test{self._jobs}"
        request = agent.ServerMessage()
        request.availability.job.CopyFrom(_job(job_id))

        async def send() -> None:
            assert self._ws is not None, "no worker registered"
            await self._ws.send_bytes(request.SerializeToString())

        asyncio.run_coroutine_threadsafe(send(), self._loop).result(timeout=10)
        return job_id

    def availability(self, job_id: str) -> agent.AvailabilityResponse | None:
        for msg in list(self.received):
            if msg.HasField("availability") and msg.availability.job_id == job_id:
                return msg.availability
        return None

    def statuses(self) -> list[agent.UpdateWorkerStatus]:
        return [m.update_worker for m in list(self.received) if m.HasField("update_worker")]

    def registered(self) -> bool:
        return any(m.HasField("register") for m in list(self.received))

    def wait_for(self, what: str, check: Callable[[], T | None], *, within: float = 60) -> T:
        deadline = time.monotonic() + within
        while (found := check()) is None or found is False:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {within:.0f} s")
            time.sleep(0.05)
        return found


def _job(job_id: str) -> agent.Job:
    return agent.Job(
        id=job_id,
        type=agent.JobType.JT_ROOM,
        room=models.Room(sid=f"RM_{job_id}", name=f"room-{job_id}"),
    )
