"""What a new user sees from `voice-agent` before anything works: short, true, redacted."""

from __future__ import annotations

import json
import socket

import pytest

from testing.cli import ROOT, chat_env, run_cli
from testing.polling import free_port
from testing.servers.openai_server import ScriptedLLMServer

pytestmark = pytest.mark.timeout(120)

SECRET_KEY = "sk-first-run-canary-0123456789"


def test_unreachable_livekit_gets_one_short_line_per_attempt_a_hint_and_the_url_used(
    llm_server: ScriptedLLMServer,
) -> None:
    used = f"ws://127.0.0.1:{free_port()}"
    env = chat_env(
        llm_server,
        LIVEKIT_URL="ws://127.0.0.1:9",  # the command line wins over this
        WORKER_CONNECT_RETRIES="2",
        WORKER_PORT="0",
        LLM_API_KEY=SECRET_KEY,
    )
    result = run_cli(["start", "--url", used], env=env, cwd=ROOT, timeout=90)

    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stdout == ""  # livekit's own stdout handler is gone: no second copy
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == (
        f"voice-agent: worker stopped: LiveKit unreachable at {used} after 3 attempts "
        "(WORKER_CONNECT_RETRIES=2)"
    )
    records = [json.loads(line) for line in lines[:-1]]  # every other line is ours, JSON
    attempts = [r["event"] for r in records if r["event"].startswith("LiveKit unreachable")]
    assert attempts == [
        f"LiveKit unreachable at {used} (attempt 1 of 3), next attempt in 0s",
        f"LiveKit unreachable at {used} (attempt 2 of 3), next attempt in 2s",
    ]
    hints = [r for r in records if "docker compose up livekit" in r["event"]]
    assert len(hints) == 1 and "voice-agent check" in hints[0]["event"]
    assert "Traceback" not in result.stderr
    # short: no aiohttp connection-key repr (livekit's own warning carried ~600 characters)
    assert all(len(line) < 300 for line in lines if "LiveKit unreachable" in line)
    assert "ws://127.0.0.1:9" not in result.stderr
    # livekit's early lines come through our formatter, with our fields
    assert any(r["event"] == "starting worker" and r["logger"] == "livekit.agents" for r in records)
    assert SECRET_KEY not in result.stderr


def test_the_development_key_is_one_line_of_ours_not_a_library_warning(
    llm_server: ScriptedLLMServer,
) -> None:
    env = chat_env(llm_server, WORKER_CONNECT_RETRIES="0", WORKER_PORT="0")
    env["LIVEKIT_URL"] = f"ws://127.0.0.1:{free_port()}"
    result = run_cli(["start"], env=env, cwd=ROOT, timeout=90)
    assert result.returncode == 1
    assert result.stderr.count("LiveKit's development key") == 1
    assert "never in production" in result.stderr
    assert "InsecureKeyLengthWarning" not in result.stderr

    env["LIVEKIT_API_SECRET"] = "a-production-secret-of-enough-length-0123456789"
    result = run_cli(["start"], env=env, cwd=ROOT, timeout=90)
    assert "development key" not in result.stderr


def test_a_busy_worker_port_names_worker_port(llm_server: ScriptedLLMServer) -> None:
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = chat_env(llm_server, WORKER_PORT=str(port), LIVEKIT_URL="ws://127.0.0.1:9")
        result = run_cli(["start"], env=env, cwd=ROOT)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"voice-agent: WORKER_PORT: port {port} is in use (another worker running?)"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["start", "--help"], "Usage: voice-agent start"),
        (["dev", "--help"], "Usage: voice-agent dev"),
        (["console", "--help"], "Usage: voice-agent console"),
        (["download-files", "--help"], "usage: voice-agent download-files"),
        (["setup", "--help"], "usage: voice-agent setup"),
        (["talk", "--help"], "usage: voice-agent talk"),
        (["--help"], "usage: voice-agent"),
    ],
)
def test_every_help_works_without_configuration(
    tmp_path: pytest.TempPathFactory, args: list[str], expected: str
) -> None:
    # no LLM configured at all: any command that loaded settings would exit 2
    result = run_cli(args, env=chat_env(None), cwd=tmp_path)  # type: ignore[arg-type]
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
    assert "downloading" not in (result.stdout + result.stderr).lower()


def test_console_without_an_audio_device_says_so_in_one_line(llm_server: ScriptedLLMServer) -> None:
    from agent.commands.preflight import audio_device_problem

    if audio_device_problem() is None:
        pytest.skip("this machine has audio devices")
    result = run_cli(["console"], env=chat_env(llm_server), cwd=ROOT)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("voice-agent: console: no audio")
    assert "voice-agent chat" in lines[0]
