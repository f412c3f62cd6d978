"""`/api/settings`: what it shows, who may use it, what it writes to `.env`.

The talk server's app with the settings installed, in-process, against real backends
on 127.0.0.1 (the scripted LLM server, a scripted speech server, a LiveKit double);
`.env` is a real file in a temporary directory, read back as the worker reads it.
"""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.commands.talk import TalkOptions, build_app
from agent.commands.talk.settings_api import SettingsOptions, install
from agent.config.live import load_file, revision_of
from agent.config.settings import Settings
from testing.polling import free_port
from testing.servers.livekit_server import FakeLiveKitServer
from testing.servers.openai_server import Reply, ScriptedLLMServer, Status
from testing.servers.scripted_speech import ScriptedSpeechServer

TOKEN = "settings-test-token-0123456789"
OLD_KEY = "sk-old-key-4f9a2c7e1b"
GROQ_KEY = "gsk-unrelated-9d8c7b6a5e"
LIVEKIT_SECRET = "livekit-secret-that-is-long-enough-for-hs256"
# every character .env or a shell gives a meaning to
METACHARACTER_KEY = "sk-$HOME-${X}-$(id)-`id`-'q'-\"qq\"-#hash-back\\slash-end"


@dataclass
class Backends:
    llm: ScriptedLLMServer
    speech: ScriptedSpeechServer
    livekit: FakeLiveKitServer


@pytest.fixture(scope="module")
def backends() -> Iterator[Backends]:
    with (
        ScriptedLLMServer(model="model-a", listed=("model-a", "model-b")) as llm,
        ScriptedSpeechServer(stt_delay=0, tts_delay=0, speech_seconds=0.3) as speech,
        FakeLiveKitServer(api_secret=LIVEKIT_SECRET) as livekit,
    ):
        yield Backends(llm, speech, livekit)


def env_text(b: Backends, **changes: str) -> str:
    values = {
        "LLM_BASE_URL": b.llm.base_url,
        "LLM_MODEL": "model-a",
        "LLM_API_KEY": OLD_KEY,
        "GROQ_API_KEY": GROQ_KEY,
        "STT_PROVIDER": "openai-compatible",
        "STT_BASE_URL": b.speech.base_url,
        "STT_MODEL": "whisper-1",
        "TTS_PROVIDER": "openai-compatible",
        "TTS_BASE_URL": b.speech.base_url,
        "TTS_MODEL": "tts-1",
        "TTS_VOICE": "alloy",
        "LIVEKIT_URL": b.livekit.url,
        "LIVEKIT_API_SECRET": LIVEKIT_SECRET,
        **changes,
    }
    lines = [f"{k}={v}" for k, v in values.items()]
    return "# my agent\n" + "\n".join(lines) + "\nAGENT_GREETING=Hello from my own line\n"


@pytest.fixture
def env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backends: Backends) -> Path:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for vendor in ("GROQ_API_KEY", "OPENAI_API_KEY", "OPENROUTER_API_KEY"):
        monkeypatch.delenv(vendor, raising=False)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / ".env"
    path.write_text(env_text(backends))
    path.chmod(0o600)
    return path


@pytest.fixture
async def client(env_file: Path) -> AsyncIterator[TestClient[Any, Any]]:
    app = build_app(
        TalkOptions(livekit_url="ws://localhost:7880", api_key="devkey", api_secret="secret")
    )
    install(app, SettingsOptions(token=TOKEN, env_file=env_file, scan_hosts=(), probe_timeout=5))
    async with TestClient(TestServer(app)) as client:
        yield client


AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRETS = (OLD_KEY, GROQ_KEY, LIVEKIT_SECRET, TOKEN, METACHARACTER_KEY)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
        assert secret[-6:] not in text  # not even its end, as vendors quote keys


async def read(path: Path) -> str:
    """The file's text, read off the event loop."""
    return await asyncio.to_thread(path.read_text)


async def call(client: TestClient[Any, Any], method: str, path: str, **kw: Any) -> Any:
    resp = await client.request(method, path, **kw)
    text = await resp.text()
    assert_no_secret(text)
    assert_no_secret(json.dumps(dict(resp.headers)))
    return resp.status, json.loads(text) if text else None


ENDPOINTS = [
    ("GET", "/api/settings", None),
    ("GET", "/api/settings/servers", None),
    ("POST", "/api/settings/test", {"llm": {"model": "model-b"}}),
    ("PUT", "/api/settings", {"llm": {"model": "model-b"}}),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_every_endpoint_wants_the_token_401_without_403_with_another(
    client: TestClient[Any, Any], env_file: Path, method: str, path: str, body: Any
) -> None:
    before = await read(env_file)
    resp = await client.request(method, path, json=body)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert "access token" in (await resp.json())["error"]
    for wrong in ("Bearer not-the-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x"):
        resp = await client.request(method, path, json=body, headers={"Authorization": wrong})
        assert resp.status == (401 if wrong.startswith("Basic") else 403), wrong
    assert await read(env_file) == before
    assert not await asyncio.to_thread(env_file.with_name(".env.bak").exists)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},  # this host, another port
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # another port of this host is another origin
    ],
)
async def test_a_request_from_another_origin_is_refused_even_with_the_token(
    client: TestClient[Any, Any], env_file: Path, headers: dict[str, str]
) -> None:
    before = await read(env_file)
    for method, path, body in ENDPOINTS:
        status, answer = await call(client, method, path, json=body, headers={**AUTH, **headers})
        assert (status, answer) == (403, {"error": "requests from another origin are refused"})
    assert await read(env_file) == before


async def test_the_pages_own_origin_is_served(client: TestClient[Any, Any]) -> None:
    own = str(client.make_url("")).rstrip("/")
    headers = {**AUTH, "Origin": own, "Sec-Fetch-Site": "same-origin"}
    status, answer = await call(client, "POST", "/api/settings/test", json={}, headers=headers)
    assert status == 400  # through both checks, to the body's validation
    assert answer["error"].startswith("expected a JSON object naming the roles")


async def test_the_view_shows_each_roles_backend_and_state_never_a_key(
    client: TestClient[Any, Any], backends: Backends, env_file: Path
) -> None:
    status, view = await call(client, "GET", "/api/settings", headers=AUTH)
    assert status == 200
    assert view["revision"] == revision_of(env_file) and view["error"] is None
    roles = {r["role"]: r for r in view["roles"]}
    assert list(roles) == ["llm", "stt", "tts", "livekit"]
    llm = roles["llm"]
    assert (llm["provider"], llm["base_url"], llm["model"]) == (
        "openai-compatible",
        backends.llm.base_url,
        "model-a",
    )
    assert (llm["key_set"], llm["key_from"]) == (True, "LLM_API_KEY")
    assert llm["state"] == {"ok": True, "detail": "model model-a listed"}
    assert roles["stt"]["state"]["ok"] is True and roles["stt"]["key_set"] is False
    assert roles["tts"]["voice"] == "alloy" and roles["tts"]["state"]["ok"] is True
    assert roles["livekit"]["state"] == {"ok": True, "detail": "server answered (0 active rooms)"}
    assert roles["livekit"]["editable"] is False
    assert view["providers"]["llm"][0] == "openai-compatible"


async def test_a_server_that_is_down_shows_its_one_line_reason(
    client: TestClient[Any, Any], backends: Backends, env_file: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"
    await asyncio.to_thread(env_file.write_text, env_text(backends, STT_BASE_URL=closed))
    status, view = await call(client, "GET", "/api/settings", headers=AUTH)
    stt = next(r for r in view["roles"] if r["role"] == "stt")
    assert stt["state"] == {"ok": False, "detail": "connection refused or host unreachable"}
    # Test says the same of a candidate, before anything is written
    status, tested = await call(
        client, "POST", "/api/settings/test", json={"llm": {"base_url": closed, "model": "m"}},
        headers=AUTH,
    )  # fmt: skip
    assert status == 200
    assert tested["results"] == {
        "llm": {"ok": False, "detail": "connection refused or host unreachable"}
    }


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"llm": {"base_url": "ftp://x"}}, "LLM_BASE_URL: expected an http(s) URL such as http://localhost:8000/v1"),
        ({"llm": {"provider": "nope"}}, "LLM_PROVIDER: expected 'openai-compatible', 'ollama', 'groq', 'openrouter' or 'openai'"),  # noqa: E501
        ({"llm": {"base_url": "http://127.0.0.1:9/v1"}}, "LLM_MODEL: required for LLM_PROVIDER=openai-compatible (the model name the server serves)"),  # noqa: E501
        ({"tts": {"provider": "openai"}}, "TTS_API_KEY: required for TTS_PROVIDER=openai (set TTS_API_KEY or OPENAI_API_KEY)"),  # noqa: E501
        ({"llm": {"api_key": "sk-two\nlines"}}, "LLM_API_KEY: expected one line without control characters (no line breaks)"),  # noqa: E501
        ({"llm": {"timeout": "3"}}, "llm.timeout: unknown field"),
        ({"llm": {"model": 3}}, "llm.model: expected a string or null"),
        ({"livekit": {"url": "ws://x"}}, "livekit: not changed here (the worker reads it at start: set LIVEKIT_* in .env and restart it)"),  # noqa: E501
        ({"asr": {}}, "asr: unknown role (expected llm, stt or tts)"),
        ([1], "expected a JSON object naming the roles to change: llm, stt or tts"),
    ],
)  # fmt: skip
async def test_an_invalid_change_is_a_400_with_one_line_and_writes_nothing(
    client: TestClient[Any, Any], env_file: Path, body: Any, error: str
) -> None:
    before = await read(env_file)
    for method, path in (("PUT", "/api/settings"), ("POST", "/api/settings/test")):
        status, answer = await call(client, method, path, json=body, headers=AUTH)
        assert (status, answer) == (400, {"error": error})
    assert await read(env_file) == before
    assert not await asyncio.to_thread(env_file.with_name(".env.bak").exists)


async def test_a_body_that_is_not_json_is_a_400(client: TestClient[Any, Any]) -> None:
    status, answer = await call(client, "PUT", "/api/settings", data=b"{nope", headers=AUTH)
    assert (status, answer) == (400, {"error": "expected a JSON body"})


async def test_saving_another_model_writes_env_keeps_its_lines_backs_it_up_private(
    client: TestClient[Any, Any], backends: Backends, env_file: Path
) -> None:
    before = await read(env_file)
    change = {"llm": {"model": "model-b"}}
    status, view = await call(client, "PUT", "/api/settings", json=change, headers=AUTH)
    assert status == 200
    after = await read(env_file)
    assert after == before.replace("LLM_MODEL=model-a", "LLM_MODEL=model-b")
    assert await read(env_file.with_name(".env.bak")) == before
    assert stat.S_IMODE((await asyncio.to_thread(env_file.stat)).st_mode) == 0o600
    assert view["saved"] == {
        "env_file": str(env_file),
        "backup": ".env.bak",
        "revision": revision_of(env_file),
        "overridden": [],
    }
    llm = next(r for r in view["roles"] if r["role"] == "llm")
    assert llm["model"] == "model-b" and llm["state"]["ok"] is True
    # the same server: the key stays
    assert load_file(env_file).backends.llm_backends[0].options.api_key == OLD_KEY


async def test_another_server_for_a_role_starts_clean_without_the_old_key(
    client: TestClient[Any, Any], backends: Backends, env_file: Path
) -> None:
    other = f"http://127.0.0.1:{free_port()}/v1"
    change = {"llm": {"base_url": other, "model": "theirs"}}
    status, _ = await call(client, "PUT", "/api/settings", json=change, headers=AUTH)
    assert status == 200
    options = load_file(env_file).backends.llm_backends[0].options
    assert (options.base_url, options.model, options.api_key) == (other, "theirs", "not-needed")
    assert f"GROQ_API_KEY={GROQ_KEY}" in await read(env_file)  # other lines untouched


async def test_a_key_with_shell_and_env_metacharacters_round_trips_through_save(
    client: TestClient[Any, Any], env_file: Path
) -> None:
    change = {"llm": {"api_key": METACHARACTER_KEY + "\n"}}  # a paste's line break is trimmed
    status, view = await call(client, "PUT", "/api/settings", json=change, headers=AUTH)
    assert status == 200
    config = load_file(env_file)
    assert config.backends.llm_backends[0].options.api_key == METACHARACTER_KEY
    assert config.settings.agent_greeting == "Hello from my own line"
    llm = next(r for r in view["roles"] if r["role"] == "llm")
    assert llm["key_set"] is True


async def test_a_role_the_environment_sets_is_flagged_as_overridden(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_MODEL", "model-a")
    status, view = await call(client, "GET", "/api/settings", headers=AUTH)
    llm = next(r for r in view["roles"] if r["role"] == "llm")
    assert llm["overridden"] == ["LLM_MODEL"]
    change = {"llm": {"model": "model-b"}}
    status, view = await call(client, "PUT", "/api/settings", json=change, headers=AUTH)
    assert status == 200 and view["saved"]["overridden"] == ["LLM_MODEL"]
    llm = next(r for r in view["roles"] if r["role"] == "llm")
    assert llm["model"] == "model-a"  # the environment still wins


async def test_servers_lists_what_setup_finds_with_their_models(
    client: TestClient[Any, Any], backends: Backends
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    status, answer = await call(
        client, "GET", "/api/settings/servers", params={"url": closed}, headers=AUTH
    )
    assert status == 200
    by_url = {s["url"]: s for s in answer["servers"]}
    llm = by_url[backends.llm.origin]
    assert llm["status"] == "ok"
    assert llm["roles"]["llm"] == {
        "provider": "openai-compatible",
        "base_url": backends.llm.base_url,
        "models": ["model-a", "model-b"],
    }
    assert by_url[closed]["status"] == "down"
    assert by_url[closed]["detail"] == "connection refused or host unreachable"
    assert by_url[closed]["roles"] == {}


async def test_a_server_quoting_the_key_in_its_error_never_gets_it_into_a_response(
    client: TestClient[Any, Any], backends: Backends
) -> None:
    key = "sk-proj-candidate-key-7f3e9a"
    quoted = f"Incorrect API key: {key[:3]}****{key[-4:]} / {key}"
    backends.llm.script(Reply.of(Status(401, {"error": {"message": quoted}})))
    change = {"llm": {"model": "unlisted", "api_key": key}}
    status, answer = await call(client, "POST", "/api/settings/test", json=change, headers=AUTH)
    detail = answer["results"]["llm"]["detail"]
    assert status == 200 and answer["results"]["llm"]["ok"] is False
    assert detail.startswith("HTTP 401: Incorrect API key:")
    assert key not in detail and key[-4:] not in detail
