"""The worker's HTTP endpoints on WORKER_PORT: liveness, readiness and status.

livekit's `AgentServer` answers `/` with 200 for the whole time it is still trying to
reach LiveKit, and 503 only in the moment before it exits; its routes are registered and
frozen inside `run()`, where nothing of ours can add to them. So the worker serves its
own endpoints here, on a socket bound before livekit starts (a busy port is reported
at once, naming WORKER_PORT), and livekit's server moves to a random loopback port.

- `GET /live`: 200 while the worker's event loop answers (restart the process if not).
- `GET /ready` (and `GET /`): 200 only while registered with LiveKit and not draining;
  503 with the reason otherwise, for as long as that lasts.
- `GET /worker`: JSON with the connection state, the LiveKit URL, the attempt, the
  worker id, the active sessions and `configuration`: the revision of `.env` new sessions
  get, and why a saved change was not taken (`agent.config.live.ConfigStatus`).

More routes (`/metrics`) are added with `add_get()` before `start()`.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from aiohttp import web

from agent.config.live import ConfigStatus
from agent.ops.logging import get_logger
from agent.worker.connection import ConnectionState

log = get_logger("agent.worker")


class WorkerPortBusy(Exception):
    """WORKER_PORT cannot be bound; the message is the one line to show."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerReport:
    """A snapshot of the worker, what `/ready` and `/worker` answer from."""

    state: ConnectionState
    url: str
    attempt: int
    max_attempts: int
    worker_id: str | None
    agent_name: str
    active_sessions: int
    draining: bool
    last_error: str | None
    configuration: ConfigStatus | None = None

    @property
    def ready(self) -> bool:
        return self.state is ConnectionState.REGISTERED and not self.draining

    @property
    def not_ready_reason(self) -> str:
        if self.draining:
            return "draining: not taking new sessions"
        if self.state is ConnectionState.FAILED:
            return f"gave up connecting to LiveKit at {self.url}"
        return (
            f"not registered with LiveKit at {self.url} "
            f"(attempt {self.attempt} of {self.max_attempts})"
        )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bind_worker_port(host: str, port: int) -> socket.socket:
    """The listening socket for WORKER_PORT, bound now so a busy port stops start-up."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host or "0.0.0.0", port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise WorkerPortBusy(
                f"WORKER_PORT: port {port} is in use (another worker running?)"
            ) from None
        raise WorkerPortBusy(
            f"WORKER_HOST/WORKER_PORT: cannot listen on {host or '*'}:{port}: {e.strerror or e}"
        ) from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


class HealthServer:
    def __init__(self, sock: socket.socket, report: Callable[[], WorkerReport]) -> None:
        self._sock = sock
        self._report = report
        self._app = web.Application()
        self._runner: web.AppRunner | None = None
        self.add_get("/live", self._live)
        self.add_get("/ready", self._ready)
        self.add_get("/", self._ready)
        self.add_get("/worker", self._worker)

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def add_get(self, path: str, handler: Handler) -> None:
        """Serve `GET path` too (before `start()`: aiohttp freezes its routes then)."""
        self._app.router.add_get(path, handler)

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()
        # livekit goes on to log its own "HTTP server listening on 127.0.0.1:<random port>":
        # say first where the endpoints a supervisor or Prometheus should use really are
        host, port = self._sock.getsockname()[:2]
        paths = sorted({r.resource.canonical for r in self._app.router.routes() if r.resource})
        log.info(
            f"health and metrics on http://{host}:{port} ({', '.join(paths)}); "
            "livekit's own HTTP server stays on a loopback port"
        )

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._sock.close()

    async def _live(self, _: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def _ready(self, _: web.Request) -> web.Response:
        report = self._report()
        if report.ready:
            return web.Response(text="OK")
        return web.Response(status=503, text=report.not_ready_reason)

    async def _worker(self, _: web.Request) -> web.Response:
        report = self._report()
        return web.json_response({**asdict(report), "ready": report.ready})
