"""`VoiceAgentServer`: livekit's `AgentServer`, telling the truth about itself.

- It remembers why `run()` failed: livekit's CLI logs that (e.g. LiveKit unreachable
  after all retries) and exits 0; the `voice-agent` command reads `failure` and exits
  non-zero instead, so a container supervisor restarts the worker.
- It follows its connection to LiveKit (`agent.worker.connection`) with the URL really used
  (`start --url` changes it through `update_options`), and serves liveness, readiness
  and status on WORKER_PORT (`agent.worker.health`) for the whole time `run()` runs.
- It replaces livekit's log handler with ours as `run()` starts: livekit's CLI has just
  added its own on stdout, unredacted, which would print every line a second time.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from livekit.agents import AgentServer
from livekit.agents.utils import is_given

from agent.config.live import ConfigStatus
from agent.worker.connection import LiveKitConnection
from agent.worker.health import Handler, HealthServer, WorkerReport

from . import connection


class VoiceAgentServer(AgentServer):
    failure: BaseException | None = None

    def __init__(
        self,
        *,
        ws_url: str,
        max_retry: int,
        health_socket: socket.socket | None,
        configure_logs: Callable[[], None],
        agent_name: str = "",
        config_status: Callable[[], ConfigStatus] | None = None,
        **options: Any,
    ) -> None:
        # livekit's own HTTP server (its `/` says 200 while LiveKit is unreachable) goes
        # to a random loopback port; WORKER_PORT is `health_socket`'s
        super().__init__(ws_url=ws_url, max_retry=max_retry, host="127.0.0.1", port=0, **options)
        self.connection = LiveKitConnection(url=ws_url, max_retries=max_retry)
        self._health_socket = health_socket
        self._configure_logs = configure_logs
        self._agent_name_for_report = agent_name
        self._config_status = config_status
        self.health_routes: dict[str, Handler] = {}
        """More `GET` routes for WORKER_PORT (e.g. `/metrics`), added before `run()`."""
        self.on("worker_registered", self._on_registered)

    def _on_registered(self, worker_id: str, _server_info: object) -> None:
        self.connection.registered(worker_id)

    def update_options(self, **options: Any) -> None:
        super().update_options(**options)
        if is_given(url := options.get("ws_url")) and url:
            self.connection.url = str(url)
        if is_given(retries := options.get("max_retry")) and retries is not None:
            self.connection.max_retries = int(retries)

    def report(self) -> WorkerReport:
        conn = self.connection
        return WorkerReport(
            state=conn.state,
            url=conn.url,
            attempt=conn.attempt,
            max_attempts=conn.max_attempts,
            worker_id=conn.worker_id,
            agent_name=self._agent_name_for_report,
            active_sessions=self._active_sessions(),
            draining=self.draining,
            last_error=conn.last_error,
            configuration=self._config_status() if self._config_status else None,
        )

    def _active_sessions(self) -> int:
        try:
            return len(self.active_jobs)
        except AttributeError:  # asked before run() has made its process pool
            return 0

    async def run(self, *, devmode: bool = False, unregistered: bool = False) -> None:
        self._configure_logs()
        # stays for the process's life: livekit's CLI logs the give-up after run() returns
        connection.install(self.connection)
        health: HealthServer | None = None
        try:
            if not unregistered and self._health_socket is not None:
                health = HealthServer(self._health_socket, self.report)
                for path, handler in self.health_routes.items():
                    health.add_get(path, handler)
                await health.start()
            await super().run(devmode=devmode, unregistered=unregistered)
        except Exception as e:
            self.failure = e
            raise
        finally:
            if health is not None:
                await health.aclose()
