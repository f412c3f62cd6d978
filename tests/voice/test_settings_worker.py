"""A running worker follows `.env` without a restart: sessions that start after a save
run it, sessions in progress keep theirs, `/worker` names the revision, and a saved
change that does not load is reported there while the last good one stays in use.

Real processes (`tests.voice.env_worker`: `voice-agent start` as livekit's CLI runs it,
job processes forked by livekit); the model and the key a session uses are read where
they arrive, at the scripted LLM server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.commands.talk import TalkOptions, build_app
from agent.commands.talk.settings_api import SettingsOptions, install
from agent.config.live import revision_of
from testing.servers.openai_server import ScriptedLLMServer
from testing.servers.scripted_speech import ScriptedSpeechServer
from tests.voice.env_worker import env_worker, save_env

pytestmark = pytest.mark.timeout(300)

TOKEN = "worker-test-token-0123456789"
METACHARACTER_KEY = "sk-$HOME-${X}-$(id)-`id`-'q'-\"qq\"-#hash-back\\slash-end"


@pytest.fixture
def llm() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer(model="model-a", listed=("model-a", "model-b")) as server:
        yield server


@pytest.fixture(scope="module")
def speech() -> Iterator[ScriptedSpeechServer]:
    with ScriptedSpeechServer(stt_delay=0, tts_delay=0, speech_seconds=0.3) as server:
        yield server


def env_text(llm: ScriptedLLMServer, speech: ScriptedSpeechServer, **more: str) -> str:
    values = {
        "LLM_BASE_URL": llm.base_url,
        "LLM_MODEL": "model-a",
        "STT_PROVIDER": "openai-compatible",
        "STT_BASE_URL": speech.base_url,
        "STT_MODEL": "whisper-1",
        "TTS_PROVIDER": "openai-compatible",
        "TTS_BASE_URL": speech.base_url,
        "TTS_MODEL": "tts-1",
        "TTS_VOICE": "alloy",
        **more,
    }
    return "# written by the test\n" + "".join(f"{k}={v}\n" for k, v in values.items())


def models(requests: list[Any]) -> set[str]:
    return {r.body["model"] for r in requests}


def test_new_sessions_take_a_saved_change_old_ones_keep_theirs_and_a_bad_save_is_reported(
    tmp_path: Path, llm: ScriptedLLMServer, speech: ScriptedSpeechServer
) -> None:
    env_file = tmp_path / ".env"
    save_env(env_file, env_text(llm, speech))
    with env_worker(tmp_path, llm) as worker:
        first = worker.configuration()
        assert first["revision"] == revision_of(env_file)
        assert first["error"] is None and first["env_file"] == str(env_file)
        old = worker.take_job()
        assert models(worker.ask(old)) == {"model-a"}

        # a saved change that does not load: reported, and the last good one stays
        save_env(env_file, env_text(llm, speech, LLM_MODEL="model-b", LLM_TEMPERATURE="9"))
        rejected = worker.configuration()
        assert rejected["error"] == "LLM_TEMPERATURE: expected less than or equal to 2"
        assert rejected["revision"] == first["revision"]
        assert rejected["rejected_revision"] == revision_of(env_file)
        during = worker.take_job()
        assert models(worker.ask(during)) == {"model-a"}

        # fixed: the next session runs it, without a restart
        save_env(env_file, env_text(llm, speech, LLM_MODEL="model-b"))
        taken = worker.configuration()
        assert taken["revision"] == revision_of(env_file) != first["revision"]
        assert taken["error"] is None and taken["rejected_revision"] is None
        new = worker.take_job()
        assert models(worker.ask(new)) == {"model-b"}
        # the sessions that were running keep what they started with
        assert models(worker.ask(old)) == {"model-a"}
        assert models(worker.ask(during)) == {"model-a"}
    log = (tmp_path / "worker.log").read_text()
    assert "LLM_TEMPERATURE: expected less than or equal to 2" in log


async def _put(env_file: Path, change: dict[str, Any]) -> dict[str, Any]:
    app = build_app(
        TalkOptions(livekit_url="ws://localhost:7880", api_key="devkey", api_secret="secret")
    )
    install(app, SettingsOptions(token=TOKEN, env_file=env_file, scan_hosts=(), probe_timeout=5))
    async with TestClient(TestServer(app)) as client:
        resp = await client.put(
            "/api/settings", json=change, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        text = await resp.text()
        assert resp.status == 200, text
        assert METACHARACTER_KEY not in text
        return dict(await resp.json())


def test_a_key_with_shell_and_env_metacharacters_reaches_the_server_as_typed(
    tmp_path: Path,
    llm: ScriptedLLMServer,
    speech: ScriptedSpeechServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env_file = tmp_path / ".env"
    save_env(env_file, env_text(llm, speech))
    monkeypatch.chdir(tmp_path)
    for name in ("LLM_BASE_URL", "LLM_MODEL", "LLM_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with env_worker(tmp_path, llm, X="expanded-if-read-as-a-reference") as worker:
        saved = asyncio.run(_put(env_file, {"llm": {"api_key": METACHARACTER_KEY}}))
        assert worker.configuration()["revision"] == saved["saved"]["revision"]
        job = worker.take_job()
        (request, *_) = worker.ask(job)
        assert request.headers["authorization"] == f"Bearer {METACHARACTER_KEY}"
        assert METACHARACTER_KEY not in worker.get("/worker")
    # the worker's own log lines carry no trace of it either
    assert METACHARACTER_KEY not in (tmp_path / "worker.log").read_text()
