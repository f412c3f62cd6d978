"""The `voice-agent` command in a clean environment, as a user would run it."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
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


FORKED_COMMANDS = frozenset({"chat", "check", "setup"})
"""Commands `run_cli` forks from `testing/cli_zygote.py`: ours, whose tests are about what
they do once started, not about starting."""


def run_cli(
    args: list[str],
    *,
    env: Mapping[str, str],
    stdin: str = "",
    cwd: Path,
    timeout: float = 60,
    fresh: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`voice-agent ARGS` to its end. `chat`, `check` and `setup` are forked from a process
    that has imported them (`testing/cli_zygote.py`) unless `fresh`; other commands, and
    the tests of what a fresh start prints, run the executable."""
    if args and args[0] in FORKED_COMMANDS and "--help" not in args and not fresh:
        return _zygote().run(args, env=env, stdin=stdin, cwd=cwd, timeout=timeout)
    return subprocess.run(
        [VOICE_AGENT, *args],
        input=stdin,
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class _Zygote:
    """This process's `testing/cli_zygote.py`, started on first use."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "testing.cli_zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=ROOT,
            text=True,
        )
        self._replies = b""
        """What the zygote has written that `_read_line` has not returned yet."""
        self._lock = threading.Lock()
        self.broken = False
        """A command was interrupted (a test's timeout): its replies would be read as the
        next command's, so this zygote is done with."""
        atexit.register(self._proc.kill)

    def run(
        self, args: list[str], *, env: Mapping[str, str], stdin: str, cwd: Path, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        with self._lock, tempfile.TemporaryDirectory(prefix="voice-agent-cli-") as tmp:
            files = {name: Path(tmp, name) for name in ("stdin", "stdout", "stderr")}
            files["stdin"].write_text(stdin)
            request = {"args": args, "env": dict(env), "cwd": str(cwd)}
            request |= {name: str(path) for name, path in files.items()}
            assert self._proc.stdin is not None and self._proc.stdout is not None
            pid = 0
            try:
                self._proc.stdin.write(json.dumps(request) + "\n")
                self._proc.stdin.flush()
                pid = int(self._read_line())
                status = self._wait(pid, timeout)
            except BaseException:
                self.broken = True
                for gone in (pid, self._proc.pid) if pid else (self._proc.pid,):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(gone, signal.SIGKILL)
                raise
            out, err = files["stdout"].read_text(), files["stderr"].read_text()
        if status is None:
            raise subprocess.TimeoutExpired([VOICE_AGENT, *args], timeout, out, err)
        return subprocess.CompletedProcess([VOICE_AGENT, *args], status, out, err)

    def _wait(self, pid: int, timeout: float) -> int | None:
        """The command's exit status, or None if it was killed for running past `timeout`."""
        try:
            return int(self._read_line(timeout))
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._read_line()
            return None

    def _read_line(self, timeout: float | None = None) -> str:
        """The zygote's next line (read from its pipe's descriptor: no buffer of its own
        that `select` cannot see)."""
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._replies:
            if not select.select([fd], [], [], timeout)[0]:
                raise TimeoutError
            if not (chunk := os.read(fd, 4096)):
                raise RuntimeError(f"testing.cli_zygote exited ({self._proc.wait()})")
            self._replies += chunk
        line, _, self._replies = self._replies.partition(b"\n")
        return line.decode()


_zygotes: list[_Zygote] = []


def _zygote() -> _Zygote:
    """This process's zygote: started on first use, and again after one was broken."""
    if not _zygotes or _zygotes[-1].broken:
        _zygotes.append(_Zygote())
    return _zygotes[-1]


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
