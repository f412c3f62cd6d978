"""The worker's health endpoints tell the truth about its LiveKit connection.

A real `voice-agent start` process against a LiveKit stand-in that registers workers
over its real `/agent` WebSocket protocol, and can be switched off and on.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testing.cli import ROOT, chat_env, spawn_cli
from testing.polling import free_port
from testing.servers.livekit_server import FakeLiveKitAgentServer
from testing.servers.openai_server import ScriptedLLMServer

pytestmark = pytest.mark.timeout(150)


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_for(what: str, check: Callable[[], bool], *, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def worker_status(port: int) -> dict[str, Any]:
    status, body = get(port, "/worker")
    assert status == 200, body
    return json.loads(body)  # type: ignore[no-any-return]


@pytest.fixture
def livekit() -> Iterator[FakeLiveKitAgentServer]:
    with FakeLiveKitAgentServer() as server:
        yield server


@pytest.fixture
def worker(
    llm_server: ScriptedLLMServer, livekit: FakeLiveKitAgentServer, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    env = chat_env(
        llm_server,
        LIVEKIT_URL=livekit.url,
        WORKER_CONNECT_RETRIES="1000",
        WORKER_PORT=str(port),
        TMPDIR=str(tmp_path),  # where the worker makes its metrics directory
    )
    proc = spawn_cli(
        ["start"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for("/live", lambda: _answers(port, "/live"))
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def _answers(port: int, path: str) -> bool:
    try:
        return get(port, path)[0] == 200
    except OSError:
        return False


def test_ready_is_503_for_the_whole_outage_and_200_only_while_registered(
    livekit: FakeLiveKitAgentServer, worker: tuple[subprocess.Popen[str], int], tmp_path: Path
) -> None:
    proc, port = worker
    (metrics_dir,) = tmp_path.glob("voice-agent-metrics-*")
    livekit.drop()  # LiveKit down from the start

    # several failed attempts (0 s, 2 s, 4 s apart): not ready at any moment of them
    answers: list[int] = []

    def third_attempt_failed() -> bool:
        answers.append(get(port, "/ready")[0])
        return worker_status(port)["attempt"] >= 4

    wait_for("three failed attempts", third_attempt_failed)
    assert set(answers) == {503}, answers
    assert get(port, "/")[0] == 503
    status = worker_status(port)
    assert status["state"] == "connecting"
    assert status["ready"] is False
    assert status["url"] == livekit.url
    assert status["last_error"]
    assert get(port, "/live")[0] == 200

    livekit.accept()
    wait_for("ready", lambda: get(port, "/ready")[0] == 200, deadline_s=30)
    status = worker_status(port)
    assert status["state"] == "registered"
    assert status["worker_id"] == "AW_test1"
    assert status["active_sessions"] == 0

    # a lost connection is seen at once, and lasts until LiveKit is back
    livekit.drop()
    wait_for("not ready after the drop", lambda: get(port, "/ready")[0] == 503, deadline_s=15)
    assert worker_status(port)["state"] == "connecting"
    assert get(port, "/live")[0] == 200
    livekit.accept()
    wait_for("ready again", lambda: get(port, "/ready")[0] == 200, deadline_s=30)
    assert worker_status(port)["worker_id"] == "AW_test2"

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    # the start-up output names the port these endpoints are really on
    assert proc.stderr is not None
    # WORKER_HOST unset: this machine only (a container sets 0.0.0.0)
    assert f"health and metrics on http://127.0.0.1:{port} (/, /live, " in proc.stderr.read()
    # and the worker leaves no metrics directory behind
    assert not metrics_dir.exists()


async def test_more_routes_share_worker_port_and_readiness_follows_the_report() -> None:
    import aiohttp
    from aiohttp import web

    from agent.worker.connection import ConnectionState
    from agent.worker.health import HealthServer, WorkerReport, bind_worker_port

    report = WorkerReport(
        state=ConnectionState.REGISTERED,
        url="ws://lk.example:7880",
        attempt=1,
        max_attempts=17,
        worker_id="AW_1",
        agent_name="",
        active_sessions=2,
        draining=False,
        last_error=None,
    )
    current = [report]
    server = HealthServer(bind_worker_port("127.0.0.1", 0), lambda: current[0])

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text="sessions 2\n")

    server.add_get("/metrics", metrics)
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as http:

            async def get(path: str) -> tuple[int, str]:
                async with http.get(base + path) as resp:
                    return resp.status, await resp.text()

            assert await get("/metrics") == (200, "sessions 2\n")
            assert await get("/ready") == (200, "OK")
            current[0] = dataclasses.replace(report, draining=True)
            assert await get("/ready") == (503, "draining: not taking new sessions")
            assert (await get("/live"))[0] == 200
    finally:
        await server.aclose()
