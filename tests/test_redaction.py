"""Credentials by their shape, wherever a log line carries them; and our redaction on a
handler we do not own, as livekit's in a job process."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from urllib.parse import quote, quote_plus

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from agent.config.resolved import load_config
from agent.ops.logging import (
    configure_job_process_logging,
    configure_logging,
    get_logger,
    register_secrets,
    shorten,
)
from testing.cli import chat_env, run_cli
from testing.servers.openai_server import ScriptedLLMServer

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
    assert record.name_ == "a tool"  # type: ignore[attr-defined]  # kept, under a safe name


# --- what the shapes and the registered secrets must also catch -------------------------


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        # an unencoded "@" in the password: the userinfo runs to the authority's last "@"
        ("GET http://bob:Tr0ub@dor@host/v1 failed", "GET http://[redacted]@host/v1 failed"),
        ("see http://host/p?mail=a@b.c", "see http://host/p?mail=a@b.c"),
        ("GET https://h/x?a=1&api_key=zq81pX&b=2", "GET https://h/x?a=1&api_key=[redacted]&b=2"),
        ("GET https://h/x?key=AIzaSyA1b2 sent", "GET https://h/x?key=[redacted] sent"),
        ("https://h/ws?token=abc.def-ghi", "https://h/ws?token=[redacted]"),
        (
            "{'x-api-key': 'k-123456', 'accept': '*/*'}",
            "{'x-api-key': '[redacted]', 'accept': '*/*'}",
        ),
        ('"X-Api-Key": "k-123456"', '"X-Api-Key": "[redacted]"'),
        ("api-key: k-123456", "api-key: [redacted]"),
        ("prompt_tokens=12 max_token=3 tokens: 7", "prompt_tokens=12 max_token=3 tokens: 7"),
    ],
)
def test_more_credentials_are_recognised_by_their_shape(text: str, kept: str) -> None:
    assert shorten(text, 500) == kept


def test_a_registered_key_is_redacted_percent_encoded_and_base64_encoded() -> None:
    key = "sk-enc/8f+e2d=4c3b2a1"
    register_secrets([key])
    forms = [
        "https://h/v1?q=" + quote(key, safe=""),
        "https://h/v1?q=" + quote_plus(key),
        base64.b64encode(key.encode()).decode(),
        base64.urlsafe_b64encode(key.encode()).decode(),
    ]
    # inside a longer value, at each of base64's three alignments: user:key in a header
    forms += [base64.b64encode(f"{p}:{key}!".encode()).decode() for p in ("u", "us", "usr")]
    for text in forms:
        shown = shorten(f"sent {text} there", 500)
        assert "[redacted]" in shown, text
        # not a recognisable piece of the key's encoding either
        assert text not in shown and text[4:-4] not in shown


def test_every_secret_the_configuration_holds_is_registered(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    unused = {
        "GROQ_API_KEY": "gsk_unused_1f2e3d4c5b",  # a vendor key for another day
        "OPENROUTER_API_KEY": "sk-or-unused-9a8b7c6d",
        "STT_API_KEY": "stt-key-not-used-4e5f",  # STT is speaches: it sends none
        "MY_SERVICE_TOKEN": "svc-token-77aa88bb",
    }
    for name, value in unused.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LIVEKIT_API_SECRET", "lk-secret-3c4d5e6f7a")
    monkeypatch.chdir(tmp_path)
    config = load_config(
        llm_base_url="http://bob:Tr0ub@dor@127.0.0.1:9/v1",
        llm_model="m",
        livekit_url="wss://lk:p%40ss-w0rd@livekit.example.com",
    )
    secrets = config.secrets()
    for value in (
        *unused.values(),
        "lk-secret-3c4d5e6f7a",
        "Tr0ub@dor",
        "p%40ss-w0rd",
        "p@ss-w0rd",
    ):
        assert value in secrets
    assert "devkey" not in secrets  # the key id that goes with the secret is not one
    register_secrets(secrets)
    text = shorten(f"model m-{unused['GROQ_API_KEY']} at http://127.0.0.1:9/?p=p@ss-w0rd", 500)
    assert "gsk_unused" not in text and "ss-w0rd" not in text


@pytest.mark.timeout(120)
def test_check_never_prints_an_unused_vendor_key_a_model_id_carries(tmp_path: Path) -> None:
    """A hand-written `.env` whose model id references a key the agent does not use:
    `check` prints the model id; the key in it must not show."""
    key = "sk-unused-openai-5b6c7d8e9f"
    (tmp_path / ".env").write_text("LLM_MODEL='m-${OPENAI_API_KEY}'\n")
    with ScriptedLLMServer() as server:
        env = chat_env(None, LLM_BASE_URL=server.base_url, OPENAI_API_KEY=key)
        result = run_cli(["check"], env=env, cwd=tmp_path)
        sent = [r.body.get("model") for r in server.requests]
    assert f"m-{key}" in sent  # the model id, as the app read it, carried the key
    assert "llm      ok" in result.stdout, result.stdout + result.stderr
    assert key not in result.stdout + result.stderr
    assert key[-10:] not in result.stdout + result.stderr
