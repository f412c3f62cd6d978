"""The `voice-agent` command in a clean environment, as a user would run it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from testing.servers.openai_server import ScriptedLLMServer

VOICE_AGENT = str(Path(sys.executable).parent / "voice-agent")
ROOT = Path(__file__).resolve().parents[1]


def chat_env(server: ScriptedLLMServer | None = None, **extra: str) -> dict[str, str]:
    """A clean environment for `voice-agent chat` pointed at `server`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LLM_", "AGENT_", "TOOL", "LOG_", "OPENAI", "GROQ", "OPENROUTER"))
    }
    if server is not None:
        env.update(LLM_BASE_URL=server.base_url, LLM_MODEL="test-model")
    # the checkout under test, whatever the installed copy points at
    env["PYTHONPATH"] = str(ROOT)
    env.update(LLM_MAX_RETRIES="0", LLM_TIMEOUT="2", LOG_FORMAT="json")
    env.update(extra)
    return env


def run_cli(
    args: list[str], *, env: Mapping[str, str], stdin: str = "", cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VOICE_AGENT, *args],
        input=stdin,
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def spawn_cli(
    args: list[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    stdout: int,
    stderr: int,
    new_session: bool = False,
) -> subprocess.Popen[str]:
    """`voice-agent` in the background, its output as text; the caller stops it."""
    return subprocess.Popen(
        [VOICE_AGENT, *args],
        env=dict(env),
        cwd=cwd,
        stdout=stdout,
        stderr=stderr,
        text=True,
        start_new_session=new_session,
    )


def chat_ok(
    env: Mapping[str, str], *, cwd: Path, stdin: str = "Hello\n"
) -> subprocess.CompletedProcess[str]:
    """`voice-agent chat` that must exit 0: a failed turn is words, not a failed command."""
    result = run_cli(["chat"], env=env, stdin=stdin, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result


def stop(proc: subprocess.Popen[Any], *, within: float, group: bool = False) -> None:
    """SIGTERM (a worker drains), then SIGKILL if it has not ended within `within` seconds.
    `group`: to its whole process group (`spawn_cli(new_session=True)`), and whatever of the
    group outlived it is killed too (job processes left behind)."""

    def send(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig) if group else proc.send_signal(sig)

    send(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=within)
    if group or proc.poll() is None:
        send(signal.SIGKILL)
    proc.wait()
