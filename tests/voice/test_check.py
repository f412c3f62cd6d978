"""`voice-agent check` against backends that are up, and against ones that are not."""

from __future__ import annotations

import pytest

from testing.cli import ROOT, chat_env, run_cli
from testing.polling import free_port
from testing.servers.livekit_server import FakeLiveKitServer
from testing.servers.openai_server import ScriptedLLMServer
from testing.servers.tts_server import EspeakTTSServer
from testing.servers.whisper_server import WhisperServer

pytestmark = pytest.mark.timeout(120)


def lines_by_backend(stdout: str) -> dict[str, str]:
    return {line.split()[0]: line for line in stdout.splitlines() if line.strip()}


def test_check_says_ok_for_every_reachable_backend_and_exits_0(
    llm_server: ScriptedLLMServer, whisper_server: WhisperServer, tts_server: EspeakTTSServer
) -> None:
    with FakeLiveKitServer() as livekit:
        env = chat_env(
            llm_server,
            STT_PROVIDER="speaches",
            STT_BASE_URL=whisper_server.base_url,
            STT_MODEL="tiny.en",
            TTS_BASE_URL=tts_server.base_url,
            LIVEKIT_URL=livekit.url,
        )
        result = run_cli(["check"], env=env, cwd=ROOT)
    lines = lines_by_backend(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(lines) == {"llm", "stt", "tts", "livekit"}
    for name, url in [
        ("llm", llm_server.base_url),
        ("stt", whisper_server.base_url),
        ("tts", tts_server.base_url),
        ("livekit", livekit.url),
    ]:
        assert lines[name].split()[1:3] == ["ok", url], lines[name]
    assert tts_server.texts == ["Hello."]


def test_check_says_ok_for_the_stt_in_the_worker_with_no_stt_server_running(
    llm_server: ScriptedLLMServer, tts_server: EspeakTTSServer
) -> None:
    with FakeLiveKitServer() as livekit:
        # the default STT: nothing set, nothing listening on the Whisper server's port
        env = chat_env(llm_server, TTS_BASE_URL=tts_server.base_url, LIVEKIT_URL=livekit.url)
        env = {k: v for k, v in env.items() if not k.startswith("STT_")}
        result = run_cli(["check"], env=env, cwd=ROOT)
    lines = lines_by_backend(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines["stt"].split()[1:5] == ["ok", "in-process", "(moonshine", "tiny-en)"]
    assert lines["stt"].endswith("model tiny-en transcribed a second of silence")


def test_check_names_each_failing_backend_with_its_url_without_keys_and_exits_1(
    tts_server: EspeakTTSServer,
) -> None:
    tts_server.fail_with = 503
    closed = f"http://127.0.0.1:{free_port()}/v1"
    keys = {
        "LLM_API_KEY": "sk-llm-0123456789",
        "STT_API_KEY": "sk-stt-0123456789",
        "TTS_API_KEY": "sk-tts-0123456789",
        "LIVEKIT_API_SECRET": "lk-secret-0123456789",
    }
    with FakeLiveKitServer() as livekit:  # expects the dev secret: ours is wrong
        env = chat_env(
            None,
            LLM_BASE_URL=closed,
            LLM_MODEL="test-model",
            STT_PROVIDER="speaches",
            STT_BASE_URL=closed,
            TTS_BASE_URL=tts_server.base_url,
            LIVEKIT_URL=livekit.url,
            **keys,
        )
        result = run_cli(["check"], env=env, cwd=ROOT)
    lines = lines_by_backend(result.stdout)
    assert result.returncode == 1
    assert lines["llm"].split()[1:3] == ["FAIL", closed]
    assert lines["stt"].split()[1:3] == ["FAIL", closed]
    # the same words for the same failure, whichever client library met it
    for backend in ("llm", "stt"):
        assert lines[backend].endswith("connection refused or host unreachable")
    assert lines["tts"].split()[1:3] == ["FAIL", tts_server.base_url]
    assert "HTTP 503" in lines["tts"]
    assert lines["livekit"].split()[1:3] == ["FAIL", livekit.url]
    assert "unauthenticated" in lines["livekit"]
    for key in keys.values():
        assert key not in result.stdout + result.stderr
