"""The scripted OpenAI-compatible server in a process of its own."""

from __future__ import annotations

import multiprocessing
import sys
from multiprocessing.managers import BaseManager
from typing import Any

from testing.servers.openai_server import Reply, Request, ScriptedLLMServer


class _ChildServer(ScriptedLLMServer):
    """The server as the child process holds it, started; the parent calls its methods
    (`script`, `reset`, and these two for its properties) through a proxy."""

    def __init__(self, default: Reply) -> None:
        super().__init__(default=default)
        self.start()

    def url(self) -> str:
        return self.base_url

    def served(self) -> list[Request]:
        return list(self.requests)


class _Manager(BaseManager):
    pass


_Manager.register("ChildServer", _ChildServer)


class RemoteLLMServer:
    """`ScriptedLLMServer` run in a child process: `base_url`, `script`, `reset`, `requests`."""

    def __init__(self, *, default: Reply) -> None:
        if not sys.platform.startswith("linux"):
            # elsewhere perf_counter() need not be one clock across processes
            raise RuntimeError("the benchmarks compare timestamps across processes: Linux only")
        # spawned: a fresh interpreter (forking would copy this process's threads)
        self._manager = _Manager(ctx=multiprocessing.get_context("spawn"))
        self._default = default
        self._server: Any = None
        self.base_url = ""

    def script(self, *replies: Reply) -> None:
        self._server.script(*replies)

    def reset(self) -> None:
        self._server.reset()

    def requests(self) -> list[Request]:
        return list(self._server.served())

    def __enter__(self) -> RemoteLLMServer:
        self._manager.start()
        self._server = self._manager.ChildServer(self._default)  # type: ignore[attr-defined]
        self.base_url = self._server.url()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server = None  # the proxy goes before its manager does
        self._manager.shutdown()
