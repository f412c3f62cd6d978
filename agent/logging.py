"""structlog, configured once, for our logs and livekit-agents' stdlib logs alike.

Every line goes to stderr (stdout belongs to `voice-agent chat`), carries the
context bound with `bind_context` (session, turn, provider, model), and has every
registered secret replaced before it is written.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog

_secrets: set[str] = set()
_REDACTED = "[redacted]"


def register_secrets(values: Iterable[str]) -> None:
    _secrets.update(v for v in values if v and len(v) >= 4)


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return text


def _redact_event(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if not _secrets:
        return event
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redact(value)
        elif not isinstance(value, (int, float, bool, type(None))):
            event[key] = redact(repr(value)) if _contains_secret(repr(value)) else value
    return event


def _contains_secret(text: str) -> bool:
    return any(s in text for s in _secrets)


def configure_logging(*, level: str = "info", fmt: str | None = "json") -> None:
    """Route structlog and stdlib logging through one formatter on stderr.

    `fmt=None` picks for the reader: console lines for a person at a terminal, JSON for
    a log shipper reading a pipe or a file.
    """
    if fmt is None:
        fmt = "console" if sys.stderr.isatty() else "json"
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _redact_event,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # the HTTP clients log every request at INFO/DEBUG; keep them for debugging only
    for noisy in ("httpx", "httpx2", "httpcore", "openai", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)


@contextmanager
def bind_context(**values: Any) -> Iterator[None]:
    """Attach `values` to every log line written inside the block (task-local)."""
    with structlog.contextvars.bound_contextvars(**values):
        yield
