"""The worker's connection to LiveKit as users and probes need to see it.

livekit's `AgentServer` says little while it tries to reach LiveKit: a ~600-character
warning per attempt (the aiohttp connection key's repr), and once it gives up two
tracebacks. It emits `worker_registered` when it registers, but nothing when it loses
the connection or retries; those are only its log records (`retry_count`, `max_retry`
and `error` ride on them as `extra`). `LiveKitConnection` follows the connection from
that event and those records, and `ConnectionLogFilter`, on livekit's logger, turns
each record into one short line of ours (URL, attempt n of N, next try), adds a hint
once on how to get a LiveKit server, and drops the give-up tracebacks that the
`voice-agent` command replaces with its last line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from agent.ops.logging import get_logger, shorten

log = get_logger("agent.worker")

LIVEKIT_LOGGER = "livekit.agents"
_RETRYING = "failed to connect to livekit, retrying"
_GAVE_UP = "failed to connect to livekit after"
_ERROR_CHARS = 160

LOCAL_SERVER_HINT = (
    "no LiveKit server reachable? Run one locally with `livekit-server --dev` "
    "(or `docker compose up livekit`); `voice-agent check` probes LiveKit and every backend"
)


class ConnectionState(StrEnum):
    CONNECTING = "connecting"
    """Before the first registration, and again after a lost connection."""
    REGISTERED = "registered"
    FAILED = "failed"
    """All attempts failed; the worker is stopping."""


@dataclass(slots=True)
class LiveKitConnection:
    """Where the worker stands with LiveKit. Updated from the worker's event loop only."""

    url: str
    max_retries: int
    state: ConnectionState = ConnectionState.CONNECTING
    attempt: int = 1
    """The attempt in progress (or the last one made), counted from 1."""
    worker_id: str | None = None
    last_error: str | None = None
    _hinted: bool = False

    @property
    def max_attempts(self) -> int:
        # livekit makes one attempt, then retries `max_retry` times
        return self.max_retries + 1

    def registered(self, worker_id: str) -> None:
        self.state, self.worker_id, self.attempt, self.last_error = (
            ConnectionState.REGISTERED,
            worker_id,
            1,
            None,
        )

    def attempt_failed(self, *, failed_attempt: int, retry_in: float, error: str) -> None:
        self.state = ConnectionState.CONNECTING
        self.worker_id = None
        self.last_error = error
        self.attempt = failed_attempt + 1
        log.warning(
            f"LiveKit unreachable at {self.url} "
            f"(attempt {failed_attempt} of {self.max_attempts}), next attempt in {retry_in:g}s",
            error=error,
        )
        if not self._hinted:
            self._hinted = True
            log.info(LOCAL_SERVER_HINT)

    def gave_up(self) -> None:
        self.state = ConnectionState.FAILED
        self.worker_id = None

    def describe(self, failure: BaseException) -> str:
        """Why the worker stopped, naming the URL it really used."""
        if self.state is ConnectionState.FAILED:
            return (
                f"LiveKit unreachable at {self.url} after {self.max_attempts} attempts "
                f"(WORKER_CONNECT_RETRIES={self.max_retries})"
            )
        return f"{failure} ({self.url})"


class ConnectionLogFilter(logging.Filter):
    """On livekit's logger: connection records update `connection` and are replaced."""

    def __init__(self, connection: LiveKitConnection) -> None:
        super().__init__()
        self.connection = connection

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        if message.startswith(_RETRYING):
            self.connection.attempt_failed(
                failed_attempt=int(getattr(record, "retry_count", self.connection.attempt)),
                retry_in=_retry_delay(message),
                error=_short(getattr(record, "error", "")),
            )
            return False
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and str(exc).startswith(_GAVE_UP):
            # "worker failed" and "Error in _connection_task", each with a traceback: the
            # `voice-agent` command says it in one line, with the URL it really used
            self.connection.gave_up()
            return False
        return True


def _retry_delay(message: str) -> float:
    # "failed to connect to livekit, retrying in 4s"
    word = message.rsplit(" ", 1)[-1].removesuffix("s")
    try:
        return float(word)
    except ValueError:
        return 0.0


def _short(error: object) -> str:
    """An aiohttp connection error's str() names host and port; its repr is 600 chars."""
    # redacted before it is cut: a credential cut in half would survive as its prefix
    return shorten(" ".join(str(error).split()) or type(error).__name__, _ERROR_CHARS)


def install(connection: LiveKitConnection) -> ConnectionLogFilter:
    """Put the filter on livekit's logger (the records it filters are logged there)."""
    log_filter = ConnectionLogFilter(connection)
    logging.getLogger(LIVEKIT_LOGGER).addFilter(log_filter)
    return log_filter
