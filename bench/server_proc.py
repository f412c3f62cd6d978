"""The scripted OpenAI-compatible server in a process of its own.

Benchmarks run the server in a child process so it shares neither the event loop
nor the GIL with the code being measured. Its timestamps are `time.perf_counter()`,
which on Linux is CLOCK_MONOTONIC, one clock for every process on the machine, so
the server's "request arrived" and "first token written" compare directly with the
client's "first text out".
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testing.servers.openai_server import Reply, ScriptedLLMServer


@dataclass(frozen=True, slots=True)
class ServedRequest:
    """What the server recorded about one request, as plain data."""

    last_user_text: str
    stream: bool
    received_at: float
    first_token_at: float | None
    finished_at: float | None

    @property
    def ttft(self) -> float | None:
        """The server's own time to first token for this request."""
        return None if self.first_token_at is None else self.first_token_at - self.received_at


def _serve(default: Reply) -> None:
    """Child side: commands in as pickles on stdin, answers out as pickles on stdout."""
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the answer channel

    def send(value: Any) -> None:
        pickle.dump(value, out)
        out.flush()

    with ScriptedLLMServer(default=default) as server:
        send(server.base_url)
        while True:
            try:
                command, payload = pickle.load(inp)
            except EOFError:  # the parent went away
                return
            if command == "stop":
                send(None)
                return
            if command == "script":
                server.script(*payload)
                send(None)
            elif command == "reset":
                server.reset()
                send(None)
            elif command == "requests":
                send([_served(r) for r in list(server.requests)])


def _served(request: Any) -> ServedRequest:
    users = [m for m in request.messages if m.get("role") == "user"]
    content = users[-1].get("content") if users else ""
    if isinstance(content, list):  # content parts
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ServedRequest(
        last_user_text=str(content or ""),
        stream=request.stream,
        received_at=request.received_at,
        first_token_at=request.first_token_at,
        finished_at=request.finished_at,
    )


class RemoteLLMServer:
    """`ScriptedLLMServer`, run in a child process; a subset of its interface."""

    def __init__(self, *, default: Reply) -> None:
        if not sys.platform.startswith("linux"):
            # elsewhere perf_counter() need not be one clock across processes
            raise RuntimeError("the benchmarks compare timestamps across processes: Linux only")
        self._default = default
        self._proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    def start(self) -> RemoteLLMServer:
        root = str(Path(__file__).resolve().parents[1])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
        }
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.server_proc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=root,
            env=env,
        )
        self._send(self._default)
        self.base_url = self._recv()
        return self

    def _send(self, value: Any) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        pickle.dump(value, self._proc.stdin)
        self._proc.stdin.flush()

    def _recv(self) -> Any:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            return pickle.load(self._proc.stdout)
        except EOFError:
            raise RuntimeError("the benchmark LLM server exited") from None

    def _call(self, command: str, payload: Any = None) -> Any:
        self._send((command, payload))
        return self._recv()

    def script(self, *replies: Reply) -> None:
        self._call("script", replies)

    def reset(self) -> None:
        self._call("reset")

    def requests(self) -> list[ServedRequest]:
        return list(self._call("requests"))

    def stop(self) -> None:
        if self._proc is None:
            return
        try:
            self._call("stop")
            self._proc.wait(timeout=10)
        except (BrokenPipeError, RuntimeError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait(timeout=10)
        finally:
            for pipe in (self._proc.stdin, self._proc.stdout):
                if pipe is not None:
                    pipe.close()
            self._proc = None

    def __enter__(self) -> RemoteLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    # by its importable name, so what it pickles unpickles in the parent
    from bench.server_proc import _serve as serve

    serve(pickle.load(sys.stdin.buffer))
