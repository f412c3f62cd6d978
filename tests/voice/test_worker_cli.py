"""The worker process as a supervisor sees it: exit status and configuration errors."""

from __future__ import annotations

import pytest

from testing.cli import ROOT, chat_env, run_cli, spawn_cli, stop
from testing.polling import free_port
from testing.servers.openai_server import ScriptedLLMServer

pytestmark = pytest.mark.timeout(120)


def test_worker_exits_nonzero_when_livekit_stays_unreachable(
    llm_server: ScriptedLLMServer,
) -> None:
    url = f"ws://127.0.0.1:{free_port()}"
    env = chat_env(llm_server, LIVEKIT_URL=url, WORKER_CONNECT_RETRIES="1", WORKER_PORT="0")
    result = run_cli(["start"], env=env, cwd=ROOT, timeout=90)
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"voice-agent: worker stopped: LiveKit unreachable at {url} after 2 attempts "
        "(WORKER_CONNECT_RETRIES=1)"
    )


def test_worker_refuses_to_start_without_llm_base_url_naming_the_variable() -> None:
    result = run_cli(["start"], env=chat_env(None, LLM_MODEL="m"), cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("voice-agent: configuration error: LLM_BASE_URL:")


def test_a_refused_worker_logs_no_token_and_job_processes_log_through_livekit(
    llm_server: ScriptedLLMServer,
) -> None:
    """A worker LiveKit refuses never shows its signed token (a JWT) or secret, and job
    processes log through livekit's own handler (which adds the job's pid), redacted."""
    import json
    import subprocess
    import threading
    import time

    from testing.servers.livekit_server import FakeLiveKitAgentServer

    secret = "lk-secret-canary-0123456789"
    # it refuses (401) a worker whose token it cannot verify: ours is signed with another secret
    with FakeLiveKitAgentServer() as livekit:
        env = chat_env(
            llm_server,
            LIVEKIT_URL=livekit.url,
            LIVEKIT_API_SECRET=secret,
            WORKER_CONNECT_RETRIES="50",
            WORKER_PORT="0",
            STT_PROVIDER="speaches",
            STT_BASE_URL="http://agent:stt-pass-canary@127.0.0.1:9/v1",
        )
        proc = spawn_cli(
            ["start"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            new_session=True,  # its job processes are stopped with it
        )
        lines: list[str] = []
        assert proc.stdout is not None
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
        reader.start()

        def found(text: str) -> list[str]:
            return [line for line in list(lines) if text in line]

        try:
            deadline = time.monotonic() + 90
            while not (found("LiveKit unreachable") and found("job process ready")):
                assert proc.poll() is None, "".join(lines)[-3000:]
                assert time.monotonic() < deadline, "".join(lines)[-3000:]
                time.sleep(0.2)
        finally:
            stop(proc, within=30, group=True)
            reader.join(timeout=10)
    output = "".join(lines)
    assert livekit.registrations == 0
    for leak in ("eyJ", secret, "stt-pass-canary"):
        assert leak not in output
    # the job process's line came through livekit's handler (it adds the job's pid)
    ready = json.loads(found("job process ready")[0])
    assert ready["pid"] != proc.pid
    assert ready["stt"] == "http://[redacted]@127.0.0.1:9/v1"
