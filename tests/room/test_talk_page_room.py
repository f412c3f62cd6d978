"""The talk page (`voice-agent talk`) in headless Chromium, speaking to the real worker
through the real LiveKit server: Chromium's fake microphone plays an espeak-ng question.

The page is driven as a person would: push-to-talk on before connecting (so the question
is not spoken over the greeting), connect, wait for the agent to listen, then let go of
push-to-talk: the microphone opens and plays the WAV once (`%noloop`).
"""

from __future__ import annotations

import os
import select
import shutil
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testing.audio_io import espeak_to_wav
from testing.cli import chat_env, spawn_cli
from testing.room import Stack
from tests.room import script
from tests.room.helpers import CANARIES

pytestmark = [pytest.mark.livekit_server, pytest.mark.timeout(180)]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# every RTCPeerConnection the page makes, so the test can read its WebRTC stats
RECORD_PEER_CONNECTIONS = """
(() => {
  const Original = window.RTCPeerConnection;
  window.__peerConnections = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Original(...args);
    window.__peerConnections.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Original.prototype;
})();
"""

INBOUND_AUDIO = """
async () => {
  const total = { bytes: 0, energy: 0, samples: 0 };
  for (const pc of window.__peerConnections) {
    (await pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        total.bytes += s.bytesReceived || 0;
        total.energy += s.totalAudioEnergy || 0;
        total.samples += s.totalSamplesReceived || 0;
      }
    });
  }
  return total;
}
"""


def padded_question(folder: Path) -> Path:
    """The question, then 4 s of silence: what the fake microphone plays once."""
    spoken = espeak_to_wav(script.TOKYO, folder / "spoken.wav")
    with wave.open(str(spoken), "rb") as w:
        params, pcm = w.getparams(), w.readframes(w.getnframes())
    out = folder / "microphone.wav"
    with wave.open(str(out), "wb") as w:
        w.setparams(params)
        w.writeframes(pcm + b"\x00\x00" * params.framerate * 4)
    return out


@pytest.fixture
def talk_url(stack: Stack, tmp_path: Path) -> Iterator[str]:
    """`voice-agent talk` on a free port, pointed at the shared LiveKit server."""
    env = chat_env(
        LLM_BASE_URL="http://127.0.0.1:9/v1",
        LLM_MODEL="unused",
        LIVEKIT_URL=stack.livekit.url,
        LIVEKIT_API_KEY=stack.livekit.api_key,
        LIVEKIT_API_SECRET=stack.livekit.api_secret,
        LIVEKIT_AGENT_NAME=stack.agent_name,  # the page's tokens dispatch the worker
    )
    out = tmp_path / "talk.log"
    with out.open("w") as log:
        proc = spawn_cli(
            ["talk", "--port", "0"], env=env, cwd=tmp_path, stdout=log.fileno(), stderr=log.fileno()
        )
    try:
        deadline = time.monotonic() + 60
        while "voice-agent talk: open " not in out.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, out.read_text()
            select.select([], [], [], 0.2)
        line = next(x for x in out.read_text().splitlines() if "open " in x)
        yield line.split("open ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for secret in (*CANARIES, "eyJ"):
            assert secret not in out.read_text()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    wav = padded_question(tmp_path)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--autoplay-policy=no-user-gesture-required",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={wav}%noloop",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Any, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=True)


def test_talk_page_in_chromium_asks_a_question_and_hears_the_answer(
    stack: Stack, talk_url: str, browser: Any, tmp_path: Path
) -> None:
    shots = Path(os.environ.get("TALK_SCREENSHOTS") or tmp_path / "screenshots")
    page = browser.new_page()
    uncaught: list[str] = []
    page.on("pageerror", lambda e: uncaught.append(str(e)))
    page.add_init_script(RECORD_PEER_CONNECTIONS)
    page.goto(talk_url)
    page.wait_for_selector("body[data-phase=ready]", timeout=15000)

    page.check("#ptt")  # the microphone stays closed until the agent has greeted
    page.click("#connect")
    page.wait_for_selector("body[data-phase=agent]", timeout=60000)
    page.wait_for_selector("#transcript li.agent", timeout=60000)  # the greeting
    page.wait_for_selector("#agent-state[data-state=listening]", timeout=60000)
    screenshot(page, shots, "1-connected.png")

    page.uncheck("#ptt")  # the microphone opens: the fake device plays the question
    page.wait_for_function(
        "() => [...document.querySelectorAll('#transcript li.you:not(.interim) .text')]"
        ".some((e) => /tokyo/i.test(e.textContent))",
        timeout=60000,
    )
    page.wait_for_function(
        "(answer) => [...document.querySelectorAll('#transcript li.agent:not(.interim) .text')]"
        ".some((e) => e.textContent.includes(answer))",
        arg=script.TOKYO_ANSWER,
        timeout=60000,
    )
    # the latency table's row for the turn: the agent's measure and the browser's
    page.wait_for_function(
        "() => [...document.querySelectorAll('#latency tbody tr')]"
        ".some((r) => r.dataset.agent && r.dataset.browser)",
        timeout=30000,
    )
    page.wait_for_selector("#agent-state[data-state=listening]", timeout=60000)
    screenshot(page, shots, "2-answered.png")

    audio = page.evaluate(INBOUND_AUDIO)
    assert audio["bytes"] > 10_000 and audio["samples"] > 48_000, audio
    assert audio["energy"] > 0, audio  # not silence: the agent's voice reached the page
    playing = page.evaluate(
        "() => [...document.querySelectorAll('audio')].map((a) => !a.paused && !!a.srcObject)"
    )
    assert True in playing, playing
    rows = page.eval_on_selector_all(
        "#latency tbody tr", "rows => rows.map((r) => [...r.cells].map((c) => c.textContent))"
    )
    turn, agent_ms, browser_ms = next(r for r in rows if "–" not in r)
    assert agent_ms.endswith(" ms") and browser_ms.endswith(" ms"), rows
    assert int(agent_ms.split()[0]) > 0 and int(browser_ms.split()[0]) >= 0, rows
    print(f"\ntalk page, turn {turn}: agent {agent_ms}, browser {browser_ms}; screenshots: {shots}")
    assert uncaught == []
