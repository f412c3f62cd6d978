"""structlog, configured once, for our logs and livekit-agents' stdlib logs alike.

Every line goes to stderr (stdout belongs to `voice-agent chat`), carries the
context bound with `bind_context` (session, turn, provider, model), and has every
credential replaced before it is written: the registered secrets (every key the
configuration holds), as they are and percent-encoded or base64-encoded (a Basic
header, a key in a URL); and, by their shape wherever they appear, URL userinfo,
authorization and `x-api-key`-style header values, `?key=`/`&token=` query values and
JWTs (livekit prints its worker token in connection warnings). Redaction comes before
any truncation (`shorten`), so half a credential never survives as its prefix.

In job processes livekit's own handler ships records to the worker process; there
`configure_job_process_logging` keeps it and adds our redaction as a `logging.Filter`.
"""

from __future__ import annotations

import base64
import logging
import re
import sys
from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, quote_plus

import structlog

_secrets: set[str] = set()
_REDACTED = "[redacted]"

# credentials recognised by their shape, registered or not
_SHAPES = (
    # URL userinfo: scheme://user:password@host (or a lone token as the user), up to the
    # authority's last "@": an unencoded "@" in a password is still the password's
    (re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s'\"<>?#]+@"), rf"\1{_REDACTED}@"),
    # query values that are credentials: ?key=..., &api_key=..., &token=...
    (
        re.compile(
            r"(?i)([?&](?:api[_-]?key|key|token|access_token|auth|password|secret|sig|signature)=)"
            r"[^&\s'\"#<>]+"
        ),
        rf"\1{_REDACTED}",
    ),
    # header and field values that are keys, as dicts, JSON and reprs print them
    (
        re.compile(
            r"""(?i)(\b(?:x-api-key|api[_-]?key|x-auth-token|x-goog-api-key|access_token)"""
            r"""['"]?\s*[:=]\s*['"]?)[^'"\s,;}&]+"""
        ),
        rf"\1{_REDACTED}",
    ),
    # an Authorization header's value, whatever its scheme, as dicts and reprs print it
    (
        re.compile(
            r"""(?i)(authorization['"]?\s*[:=]\s*['"]?(?:(?:bearer|basic|token)\s+)?)[^'"\s,;}]+"""
        ),
        rf"\1{_REDACTED}",
    ),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{12,}"), rf"\1 {_REDACTED}"),
    # a JWT (three base64url parts, the first a JSON header: "eyJ")
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), _REDACTED),
)


_MIN_ENCODED = 8
"""Shorter encoded forms are left out: they would match ordinary text."""


def register_secrets(values: Iterable[str]) -> None:
    for value in values:
        if value and len(value) >= 4:
            _secrets.add(value)
            _secrets.update(f for f in encoded_forms(value) if len(f) >= _MIN_ENCODED)


def encoded_forms(secret: str) -> set[str]:
    """How `secret` looks percent-encoded (in a URL) and base64-encoded, alone or inside
    a longer value (`user:secret` in a Basic header): for each of the three alignments
    base64 can put it at, the characters that depend on the secret's bytes only."""
    forms = {quote(secret, safe=""), quote_plus(secret, safe="")}
    raw = secret.encode()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + raw).decode()
        # the characters that also encode the unknown bytes before and after are left out
        core = encoded[(0, 2, 3)[offset] : 4 * ((offset + len(raw)) // 3)]
        forms.update((core, core.replace("+", "-").replace("/", "_")))
    forms.add(base64.b64encode(raw).decode())  # the whole, padded: the secret alone
    forms.discard(secret)
    return forms


def redact(text: str) -> str:
    # longest first: a secret that contains another is replaced whole
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, _REDACTED)
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text


def shorten(text: str, limit: int) -> str:
    """`text` redacted, then cut to `limit` characters: never the other way round."""
    text = redact(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (int, float, bool, type(None))):
        return value
    text = repr(value)
    redacted = redact(text)
    return value if redacted == text else redacted


def _redact_event(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        event[key] = _redact_value(value)
    return event


_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Our redaction on a handler we do not own (livekit's, in job processes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is the handler's to report
            return True
        record.msg, record.args = redact(message), None
        for key, value in list(vars(record).items()):
            if key not in _RECORD_FIELDS:
                setattr(record, key, _redact_value(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text, record.exc_info = redact(record.exc_text), None
        return True


def _safe_extra_keys(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # a field named like a LogRecord attribute ("name", "message") may not be an `extra`
    for key in [k for k in event if k in _RECORD_FIELDS and k not in ("exc_info", "stack_info")]:
        event[f"{key}_"] = event.pop(key)
    return event


def configure_job_process_logging(*, level: str = "info") -> None:
    """Logging in a livekit job process: keep livekit's handlers, add our redaction.

    livekit puts a handler on the root logger that ships each record to the worker
    process, whose handler (ours, `configure_logging`) formats and writes it with the
    job's pid. Replacing it would bypass that; so our redaction joins it as a filter,
    and structlog events leave as plain records whose fields travel as `extra`.
    """
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _redact_event,
            _safe_extra_keys,
            structlog.stdlib.render_to_log_kwargs,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    _set_levels(root, level)


def _set_levels(root: logging.Logger, level: str) -> None:
    root.setLevel(level.upper())
    # the HTTP clients log every request at INFO/DEBUG; keep them for debugging only
    for noisy in ("httpx", "httpx2", "httpcore", "openai", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _drop_shipped_message(
    _: Any, __: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # a record shipped from a job process carries its text twice (`message` as well)
    if event.get("message") == event.get("event"):
        event.pop("message", None)
    return event


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
        _drop_shipped_message,
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
    _set_levels(root, level)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)


@contextmanager
def bind_context(**values: Any) -> Iterator[None]:
    """Attach `values` to every log line written inside the block (task-local)."""
    with structlog.contextvars.bound_contextvars(**values):
        yield
