"""Credentials by their shape, wherever a log line carries them; and our redaction on a
handler we do not own, as livekit's in a job process."""

from __future__ import annotations

import json
import logging

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from agent.ops.logging import (
    configure_job_process_logging,
    configure_logging,
    get_logger,
    register_secrets,
    shorten,
)

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ3b3JrZXIiLCJ2aWRlbyI6e319.c2lnbmF0dXJlLXBhcnQ"


def handshake_error() -> aiohttp.WSServerHandshakeError:
    headers = CIMultiDictProxy(CIMultiDict({"Authorization": f"Bearer {JWT}", "Host": "lk"}))
    info = aiohttp.RequestInfo(URL("ws://lk:7880/agent"), "GET", headers, URL("ws://lk:7880/agent"))
    return aiohttp.WSServerHandshakeError(info, (), status=401, message="Invalid response status")


def test_livekits_connection_warning_keeps_its_details_but_not_the_token(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure_logging(level="info", fmt="json")
    # as livekit logs it: the exception, headers and all, rides along as `extra`
    logging.getLogger("livekit.agents.test").warning(
        "failed to reach livekit", extra={"error": handshake_error()}
    )
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert "Bearer [redacted]" in line["error"] and "ws://lk:7880/agent" in line["error"]
    assert "eyJ" not in json.dumps(line)


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"token={JWT} sent", "token=[redacted] sent"),
        ("GET http://user:hunter2@db:5432/x failed", "GET http://[redacted]@db:5432/x failed"),
        ("'authorization': 'Basic dXNlcjpwYXNz'", "'authorization': 'Basic [redacted]'"),
        ("the bearer of bad news, basic settings", "the bearer of bad news, basic settings"),
    ],
)
def test_credentials_are_recognised_by_their_shape(text: str, kept: str) -> None:
    assert shorten(text, 500) == kept


def test_redaction_comes_before_the_cut() -> None:
    register_secrets(["sk-redact-before-cut-123456"])
    text = "x" * 20 + "sk-redact-before-cut-123456"
    # cut first, "sk-redact" would survive: the registered secret no longer matches
    assert shorten(text, 28) == ("x" * 20 + "[redacted]")[:27] + "…"


class Collecting(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_in_a_job_process_the_handler_is_kept_and_redacts_message_and_fields(
    restore_logging: None,
) -> None:
    livekits = Collecting()  # stands for livekit's LogQueueHandler
    logging.getLogger().handlers[:] = [livekits]
    register_secrets(["sk-job-process-987654"])
    configure_job_process_logging(level="info")
    assert logging.getLogger().handlers == [livekits]

    get_logger("agent.test").info(
        "calling http://u:pw-in-url@h/v1", key="sk-job-process-987654", name="a tool"
    )
    record = livekits.records[-1]
    assert record.getMessage() == "calling http://[redacted]@h/v1"
    assert record.key == "[redacted]"  # type: ignore[attr-defined]
    assert record.name_ == "a tool"  # type: ignore[attr-defined]  (kept, under a safe name)
