"""The scripted OpenAI-compatible server in a process of its own."""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from testing.servers.openai_server import Reply, ScriptedLLMServer


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


def _serve(conn: Connection, default: Reply) -> None:
    """Child side: serve `default`; answer commands from `conn` until `stop`."""
    with ScriptedLLMServer(default=default) as server:
        commands: dict[str, Callable[[Any], Any]] = {
            "script": lambda replies: server.script(*replies),
            "reset": lambda _: server.reset(),
            "requests": lambda _: [_served(r) for r in list(server.requests)],
            "stop": lambda _: None,
        }
        conn.send(server.base_url)
        command = ""
        while command != "stop":
            try:
                command, payload = conn.recv()
            except EOFError:  # the parent went away
                return
            conn.send(commands[command](payload))


class RemoteLLMServer:
    """`ScriptedLLMServer` run in a child process: `base_url`, `script`, `reset`, `requests`."""

    def __init__(self, *, default: Reply) -> None:
        if not sys.platform.startswith("linux"):
            # elsewhere perf_counter() need not be one clock across processes
            raise RuntimeError("the benchmarks compare timestamps across processes: Linux only")
        self._default = default
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self.base_url = ""

    def _call(self, message: Any) -> Any:
        assert self._conn is not None
        self._conn.send(message)
        return self._answer()

    def _answer(self) -> Any:
        assert self._conn is not None
        try:
            return self._conn.recv()
        except EOFError:
            raise RuntimeError("the benchmark LLM server exited") from None

    def script(self, *replies: Reply) -> None:
        self._call(("script", replies))

    def reset(self) -> None:
        self._call(("reset", None))

    def requests(self) -> list[ServedRequest]:
        return list(self._call(("requests", None)))

    def __enter__(self) -> RemoteLLMServer:
        # spawned: a fresh interpreter (forking would copy this process's threads)
        mp = multiprocessing.get_context("spawn")
        self._conn, child = mp.Pipe()
        self._proc = mp.Process(target=_serve, args=(child, self._default), daemon=True)
        self._proc.start()
        child.close()
        self.base_url = self._answer()
        return self

    def __exit__(self, *exc: object) -> None:
        if (proc := self._proc) is None or self._conn is None:
            return
        try:
            self._call(("stop", None))
            proc.join(timeout=10)
        except (OSError, RuntimeError):
            pass
        finally:
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=10)
            self._conn.close()
            self._proc = None
