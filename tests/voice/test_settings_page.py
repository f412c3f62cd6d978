"""The settings view in Chromium, end to end: `voice-agent talk` and a running worker in
one directory, scripted backends behind them.

Open the printed settings link, see each backend's state, pick the LLM server's other
model, test it, save it with a new key; then `.env` has changed and kept its other
lines, no network response of the page held a key, and the worker's next session asks
the new model with the new key while the session that was running keeps its own.
Screenshots go to `TALK_SCREENSHOTS`, if set, for a person to look at.
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.config.live import revision_of
from testing.cli import chat_env, spawn_cli
from testing.polling import free_port
from testing.servers.livekit_dispatch import FakeLiveKitDispatch
from testing.servers.openai_server import ScriptedLLMServer
from testing.servers.scripted_speech import ScriptedSpeechServer
from tests.test_talk_page import browser, screenshot  # noqa: F401  (the fixture)
from tests.voice.env_worker import env_worker, save_env

pytestmark = pytest.mark.timeout(300)

OLD_KEY = "sk-old-key-4f9a2c7e1b"
NEW_KEY = "sk-new-key-8e1d5f3a0c"
GROQ_KEY = "gsk-unrelated-9d8c7b6a5e"


@dataclass
class Talk:
    page_url: str
    settings_url: str
    token: str
    printed: list[str]
    """What it printed up to the settings link."""


@pytest.fixture
def llm() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer(model="model-a", listed=("model-a", "model-b")) as server:
        yield server


@pytest.fixture
def speech() -> Iterator[ScriptedSpeechServer]:
    with ScriptedSpeechServer(stt_delay=0, tts_delay=0, speech_seconds=0.3) as server:
        yield server


@pytest.fixture
def livekit() -> Iterator[FakeLiveKitDispatch]:
    """The worker registers here; the settings view lists its rooms here."""
    server = FakeLiveKitDispatch().start()
    try:
        yield server
    finally:
        server.stop()


def start_talk(directory: Path, *args: str, **env: str) -> tuple[subprocess.Popen[str], Talk]:
    """`voice-agent talk` in `directory`; its printed lines read until the settings link."""
    with (directory / "talk.err").open("w") as errors:
        proc = spawn_cli(
            ["talk", "--port", "0", "--no-port-scan", *args],
            env=chat_env(None, **env),
            cwd=directory,
            stdout=subprocess.PIPE,
            stderr=errors.fileno(),
        )
    assert proc.stdout is not None
    printed: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout

    def read() -> None:
        for line in stdout:
            printed.put(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    lines: list[str] = []
    deadline = time.monotonic() + 60  # start-up imports livekit: slow on a loaded machine
    while not any(line.startswith("voice-agent talk: settings at ") for line in lines):
        try:
            lines.append(printed.get(timeout=max(0.1, deadline - time.monotonic())))
        except queue.Empty:
            proc.kill()
            errors_text = (directory / "talk.err").read_text()[-2000:]
            raise AssertionError(f"voice-agent talk did not start: {lines} {errors_text}") from None
    time.sleep(0.5)  # the warning, if any, follows the link at once
    while not printed.empty():
        lines.append(printed.get())
    opened = next(line for line in lines if line.startswith("voice-agent talk: open "))
    link = next(line for line in lines if line.startswith("voice-agent talk: settings at "))
    settings_url = link.removeprefix("voice-agent talk: settings at ")
    return proc, Talk(
        page_url=opened.removeprefix("voice-agent talk: open "),
        settings_url=settings_url,
        token=settings_url.split("#token=", 1)[1],
        printed=lines,
    )


@contextmanager
def talk_running(directory: Path, *args: str, **env: str) -> Iterator[Talk]:
    proc, talk = start_talk(directory, *args, **env)
    try:
        yield talk
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def role_card(page: Any, role: str) -> dict[str, str]:
    card = page.query_selector(f"article.role[data-role={role}]")
    return {
        "state": card.get_attribute("data-state"),
        "model": card.query_selector("dd.model").inner_text() if role != "livekit" else "",
        "detail": card.query_selector("dd.detail").inner_text(),
        "key": card.query_selector("dd.key").inner_text(),
    }


def test_pick_test_and_save_a_model_in_the_browser_and_the_next_session_uses_it(
    browser: Any,  # noqa: F811
    tmp_path: Path,
    llm: ScriptedLLMServer,
    speech: ScriptedSpeechServer,
    livekit: FakeLiveKitDispatch,
) -> None:
    env_file = tmp_path / ".env"
    before = (
        "# my agent: the lines the page does not own stay as they are\n"
        f"LLM_BASE_URL={llm.base_url}\nLLM_MODEL=model-a\nLLM_API_KEY={OLD_KEY}\n"
        f"GROQ_API_KEY={GROQ_KEY}\n"
        f"STT_PROVIDER=openai-compatible\nSTT_BASE_URL={speech.base_url}\nSTT_MODEL=whisper-1\n"
        f"TTS_PROVIDER=openai-compatible\nTTS_BASE_URL={speech.base_url}\nTTS_MODEL=tts-1\n"
        "TTS_VOICE=alloy\nHISTORY_MAX_TURNS=12\n"
        f"LIVEKIT_URL={livekit.url}\n"
    )
    save_env(env_file, before)
    with env_worker(tmp_path, llm, livekit) as worker:
        old = worker.take_job()
        (asked,) = worker.ask(old)
        assert asked.body["model"] == "model-a"

        with talk_running(tmp_path) as talk:
            responses = _settings_flow(browser, talk, env_file)

        # .env: the LLM's model and key changed, every other line as it was
        after = env_file.read_text()
        assert after == before.replace("LLM_MODEL=model-a", "LLM_MODEL=model-b").replace(
            f"LLM_API_KEY={OLD_KEY}", f"LLM_API_KEY={NEW_KEY}"
        )
        assert env_file.with_name(".env.bak").read_text() == before
        # no key reached the page: not in a body, not in a header
        for url, headers, body in responses:
            for secret in (OLD_KEY, NEW_KEY, GROQ_KEY, talk.token):
                assert secret not in body and secret not in headers, url
        assert any(url.endswith("/api/settings") for url, _, _ in responses)

        # the worker: the next session asks model-b with the new key, the old one keeps its own
        assert worker.configuration()["revision"] == revision_of(env_file)
        new = worker.take_job()
        (asked_new,) = worker.ask(new)
        assert asked_new.body["model"] == "model-b"
        assert asked_new.headers["authorization"] == f"Bearer {NEW_KEY}"
        (asked_old,) = worker.ask(old)
        assert asked_old.body["model"] == "model-a"
        assert asked_old.headers["authorization"] == f"Bearer {OLD_KEY}"


def _settings_flow(chromium: Any, talk: Talk, env_file: Path) -> list[tuple[str, str, str]]:
    """The page, driven as a person would; every response it got (URL, headers, body)."""
    page = chromium.new_page(viewport={"width": 1100, "height": 900})
    seen: list[Any] = []
    uncaught: list[str] = []
    page.on("response", lambda r: seen.append(r))
    page.on("pageerror", lambda e: uncaught.append(str(e)))
    page.goto(talk.settings_url)
    page.wait_for_selector("body[data-phase=ready]", timeout=90000)
    assert "token" not in page.url  # taken out of the address bar (and history)

    assert role_card(page, "llm") == {
        "state": "ok",
        "model": "model-a",
        "detail": "model model-a listed",
        "key": "set (LLM_API_KEY)",
    }
    for role in ("stt", "tts", "livekit"):
        assert role_card(page, role)["state"] == "ok", role_card(page, role)
    screenshot(page, "settings-loaded.png")

    # pick the LLM server's other model, give a new key, test it: nothing written yet
    written = env_file.read_bytes()
    page.click("#servers button[data-role=llm][data-model=model-b]")
    form = "form.edit[data-role=llm]"
    assert page.input_value(f"{form} input[name=model]") == "model-b"
    page.fill(f"{form} input[name=api_key]", NEW_KEY)
    page.click(f"{form} button.test")
    page.wait_for_selector(f"{form} .result[data-ok=true]", timeout=90000)
    assert page.inner_text(f"{form} .result") == "ok: model model-b listed"
    assert env_file.read_bytes() == written
    screenshot(page, "settings-tested.png")

    page.click(f"{form} button.save")
    page.wait_for_selector("body[data-phase=saved]", timeout=90000)
    saved = page.inner_text("#saved")
    assert f"revision {revision_of(env_file)}" in saved
    assert "(the previous file is in .env.bak)" in saved
    assert role_card(page, "llm")["model"] == "model-b"
    assert role_card(page, "llm")["state"] == "ok"
    screenshot(page, "settings-saved.png")
    assert uncaught == []

    out = []
    for response in seen:
        try:
            body = response.body().decode(errors="replace")
        except Exception:  # a redirect or an aborted request has none
            body = ""
        out.append((response.url, str(response.all_headers()), body))
    page.close()
    return out


@pytest.mark.timeout(180)
def test_talk_prints_the_settings_link_with_a_token_fresh_at_each_start_or_settings_token(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text("LLM_BASE_URL=http://127.0.0.1:9/v1\nLLM_MODEL=m\n")
    with talk_running(tmp_path) as first:
        assert first.settings_url == f"{first.page_url}settings#token={first.token}"
        assert len(first.token) >= 32
        assert not [line for line in first.printed if "warning" in line]
    # every interface, plain HTTP: the token would cross the network in the clear
    with talk_running(tmp_path, "--host", "0.0.0.0") as second:
        assert second.token != first.token
        (warning,) = [line for line in second.printed if "warning" in line]
        assert warning == (
            "voice-agent talk: warning: --host 0.0.0.0 without --certfile: the settings token "
            "travels in the clear to other machines (use HTTPS or an SSH tunnel)"
        )
    chosen = "a-token-chosen-by-the-user-0042"
    with talk_running(tmp_path, SETTINGS_TOKEN=chosen) as third:
        assert third.token == chosen
        assert sum(chosen in line for line in third.printed) == 1  # printed once


@pytest.mark.timeout(180)
def test_the_page_asks_for_the_token_refuses_a_wrong_one_and_shows_a_server_that_is_down(
    browser: Any,  # noqa: F811
    tmp_path: Path,
    llm: ScriptedLLMServer,
    livekit: FakeLiveKitDispatch,
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"
    (tmp_path / ".env").write_text(
        f"LLM_BASE_URL={llm.base_url}\nLLM_MODEL=model-a\nLIVEKIT_URL={livekit.url}\n"
        f"STT_PROVIDER=openai-compatible\nSTT_BASE_URL={closed}\nSTT_MODEL=whisper-1\n"
        f"TTS_PROVIDER=openai-compatible\nTTS_BASE_URL={closed}\nTTS_MODEL=tts-1\n"
        "TTS_VOICE=alloy\n"
    )
    with talk_running(tmp_path) as talk:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        uncaught: list[str] = []
        page.on("pageerror", lambda e: uncaught.append(str(e)))
        page.goto(talk.page_url + "settings")
        page.wait_for_selector("body[data-phase=token]", timeout=90000)
        assert page.is_visible("#token-form")
        page.fill("#token-input", "not-the-token")
        page.click("#token-form button")
        page.wait_for_selector("#error:has-text('wrong access token')", timeout=90000)
        assert page.is_visible("#token-form")
        screenshot(page, "settings-wrong-token.png")

        page.fill("#token-input", talk.token)
        page.click("#token-form button")
        page.wait_for_selector("body[data-phase=ready]", timeout=90000)
        assert page.is_hidden("#token-form") and page.is_hidden("#error")
        for role in ("stt", "tts"):
            card = role_card(page, role)
            assert (card["state"], card["detail"]) == (
                "fail",
                "connection refused or host unreachable",
            )
        assert role_card(page, "llm")["state"] == "ok"
        assert page.inner_text("article.role[data-role=stt] .badge") == "failed"
        screenshot(page, "settings-down.png")
        assert uncaught == []
