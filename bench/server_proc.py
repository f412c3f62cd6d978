"""The scripted OpenAI-compatible server in a process of its own."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testing.servers.openai_server import Reply, ScriptedLLMServer

ROOT = Path(__file__).resolve().parents[1]  # not `.common`'s: the child imports no livekit


@dataclass(frozen=True, slots=True)
class ServedRequest:
    """What the server recorded about one request, as plain data."""

    last_user_text: str
    received_at: float
    first_token_at: float | None
    finished_at: float | None

    @property
    def ttft(self) -> float | None:
        """The server's own time to first token for this request."""
        return None if self.first_token_at is None else self.first_token_at - self.received_at


def _served(request: Any) -> ServedRequest:
    users = [m for m in request.messages if m.get("role") == "user"]
    content = users[-1].get("content") if users else ""
    if isinstance(content, list):  # content parts
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ServedRequest(
        str(content or ""), request.received_at, request.first_token_at, request.finished_at
    )


def _serve() -> None:
    """Child side: the default reply, then commands, in as pickles on stdin; answers out."""
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the answer channel
    with ScriptedLLMServer(default=pickle.load(inp)) as server:
        commands: dict[str, Callable[[Any], Any]] = {
            "script": lambda replies: server.script(*replies),
            "reset": lambda _: server.reset(),
            "requests": lambda _: [_served(r) for r in list(server.requests)],
            "stop": lambda _: None,
        }
        answer: Any = server.base_url
        command = ""
        while command != "stop":
            pickle.dump(answer, out)
            out.flush()
            try:
                command, payload = pickle.load(inp)
            except EOFError:  # the parent went away
                return
            answer = commands[command](payload)
        pickle.dump(answer, out)
        out.flush()


class RemoteLLMServer:
    """`ScriptedLLMServer` run in a child process: `base_url`, `script`, `reset`, `requests`."""

    def __init__(self, *, default: Reply) -> None:
        if not sys.platform.startswith("linux"):
            # elsewhere perf_counter() need not be one clock across processes
            raise RuntimeError("the benchmarks compare timestamps across processes: Linux only")
        self._default = default
        self._proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    def _call(self, message: Any) -> Any:
        assert self._proc is not None and self._proc.stdin and self._proc.stdout
        pickle.dump(message, self._proc.stdin)
        self._proc.stdin.flush()
        try:
            return pickle.load(self._proc.stdout)
        except EOFError:
            raise RuntimeError("the benchmark LLM server exited") from None

    def script(self, *replies: Reply) -> None:
        self._call(("script", replies))

    def reset(self) -> None:
        self._call(("reset", None))

    def requests(self) -> list[ServedRequest]:
        return list(self._call(("requests", None)))

    def __enter__(self) -> RemoteLLMServer:
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.server_proc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": path},
        )
        self.base_url = self._call(self._default)
        return self

    def __exit__(self, *exc: object) -> None:
        if (proc := self._proc) is None:
            return
        try:
            self._call(("stop", None))
            proc.wait(timeout=10)
        except (BrokenPipeError, RuntimeError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(timeout=10)
        finally:
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()
            self._proc = None


if __name__ == "__main__":
    # by its importable name, so that what it pickles unpickles in the parent
    from bench.server_proc import _serve as serve

    serve()
