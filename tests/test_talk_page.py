"""`voice-agent talk`: the token endpoint's grants, and the page in Debian's headless
Chromium with a fake microphone (driven by Playwright over the DevTools protocol).

These browser tests point the page at a port where nothing listens: what they prove is
the page up to and including its attempt to connect, and the message it shows when that
fails. The page in a real room, against a real LiveKit server and worker, is
tests/room/test_talk_page_room.py.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import select
import shutil
import ssl
import struct
import subprocess
import time
import urllib.request
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from livekit import api

from agent.commands.talk import TalkOptions, build_app, url_for_browser
from agent.voice.room_events import EVENTS_TOPIC, RoomEvents
from testing.cli import chat_env, spawn_cli
from testing.polling import free_port

API_KEY = "talk-test-key"
API_SECRET = "talk-test-secret-that-is-long-enough-for-hs256"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = os.environ.get("TALK_SCREENSHOTS")
"""A folder to save the page's screenshots in (for a person to look at)."""


# --- the token endpoint ----------------------------------------------------------------


@pytest.mark.parametrize("agent_name", ["", "front-desk"])
async def test_token_joins_a_fresh_room_and_dispatches_the_named_agent(agent_name: str) -> None:
    opts = TalkOptions(
        livekit_url="ws://localhost:7880",
        api_key=API_KEY,
        api_secret=API_SECRET,
        agent_name=agent_name,
    )
    async with TestClient(TestServer(build_app(opts))) as client:
        first = await (await client.get("/api/token")).json()
        second = await (await client.get("/api/token")).json()
    assert set(first) == {"url", "token", "room"}
    assert first["room"] != second["room"]  # a fresh room each time
    claims = api.TokenVerifier(API_KEY, API_SECRET).verify(first["token"])
    assert claims.video is not None
    assert claims.video.room_join is True
    assert claims.video.room == first["room"]
    assert claims.video.can_publish and claims.video.can_subscribe
    assert claims.video.can_publish_data
    assert not claims.video.room_admin and not claims.video.room_create  # no admin rights
    assert claims.identity.startswith("user-")
    if agent_name:
        assert claims.room_config is not None
        assert [a.agent_name for a in claims.room_config.agents] == [agent_name]
    else:
        assert claims.room_config is None or not claims.room_config.agents
    with pytest.raises(Exception, match="Signature"):
        api.TokenVerifier(API_KEY, "another-secret-that-is-long-enough-too").verify(first["token"])


@pytest.mark.parametrize(
    ("livekit_url", "page_host", "expected"),
    [
        ("ws://localhost:7880", "127.0.0.1:8090", "ws://localhost:7880"),
        ("ws://localhost:7880", "192.168.1.20:8090", "ws://192.168.1.20:7880"),
        ("http://127.0.0.1:7880", "box.lan", "ws://box.lan:7880"),
        ("wss://lk.example.com", "192.168.1.20:8090", "wss://lk.example.com"),
        ("https://lk.example.com:443/", "localhost:8090", "wss://lk.example.com:443/"),
    ],
)
def test_livekit_url_is_given_as_the_browser_reaches_it(
    livekit_url: str, page_host: str, expected: str
) -> None:
    assert url_for_browser(livekit_url, page_host) == expected


async def test_page_and_its_bundle_are_served_from_the_package() -> None:
    opts = TalkOptions(livekit_url="ws://localhost:7880", api_key=API_KEY, api_secret=API_SECRET)
    async with TestClient(TestServer(build_app(opts))) as client:
        page = await (await client.get("/")).text()
        bundle = await client.get("/static/talk.js")
        body = await bundle.text()
        missing = await client.get("/static/../server.py")
    assert 'data-events-topic="voice-agent.events"' in page
    assert 'src="/static/talk.js"' in page
    assert "//" not in page.replace("://", "")  # nothing from another origin
    assert bundle.status == 200 and bundle.content_type == "text/javascript"
    assert "lk.transcription" in body and "lk.agent.state" in body
    assert missing.status == 404


# --- the page in Chromium ----------------------------------------------------------------


@dataclass
class TalkServer:
    url: str
    livekit_port: int


def fake_microphone(path: Path) -> Path:
    """A second of a 440 Hz tone: what Chromium's fake capture device plays."""
    rate = 16000
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(rate)
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


def start_talk(cwd: Path, *args: str) -> tuple[subprocess.Popen[str], str, int]:
    """`voice-agent talk` on a free port; (process, page URL, the closed LiveKit port)."""
    livekit_port = free_port()
    env = chat_env(
        LLM_BASE_URL="http://127.0.0.1:9/v1",
        LLM_MODEL="unused",
        LIVEKIT_URL=f"ws://localhost:{livekit_port}",
        LIVEKIT_API_KEY=API_KEY,
        LIVEKIT_API_SECRET=API_SECRET,
        LIVEKIT_AGENT_NAME="front-desk",
        # the name the browser tests give 127.0.0.1 (a LAN name): served when configured
        TALK_ALLOWED_HOSTS="talk-lan.test",
    )
    proc = spawn_cli(
        ["talk", "--port", "0", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60  # start-up imports livekit: slow on a loaded machine
    line = ""
    while "voice-agent talk: open " not in line:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("voice-agent talk did not start")
        if select.select([proc.stdout], [], [], 0.5)[0]:
            line = proc.stdout.readline()
    return proc, line.split("open ", 1)[1].strip(), livekit_port


@pytest.fixture
def talk_server(tmp_path: Path) -> Iterator[TalkServer]:
    proc, url, livekit_port = start_talk(tmp_path)
    try:
        yield TalkServer(url=url, livekit_port=livekit_port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.timeout(60)
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_talk_serves_https_with_the_given_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    proc, url, _ = start_talk(tmp_path, "--certfile", str(cert), "--keyfile", str(key))
    try:
        assert url.startswith("https://localhost:")
        context = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(f"{url}api/token", context=context, timeout=10) as resp:
            body = json.load(resp)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert api.TokenVerifier(API_KEY, API_SECRET).verify(body["token"]).video is not None


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    wav = fake_microphone(tmp_path / "mic.wav")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={wav}",
                # a name for 127.0.0.1 that is not "localhost": how a LAN address looks
                "--host-resolver-rules=MAP talk-lan.test 127.0.0.1",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageErrors:
    uncaught: list[str] = field(default_factory=list)
    """Exceptions no script caught: never expected."""
    console: list[str] = field(default_factory=list)
    """What the page logged as an error (livekit-client logs a failed connection)."""


def open_page(browser: Any, url: str) -> tuple[Any, PageErrors]:
    """A new page at `url`, loaded and ready to connect; its errors from the first load on."""
    page = browser.new_page()
    errors = PageErrors()
    page.on("pageerror", lambda e: errors.uncaught.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.console.append(m.text))
    page.goto(url)
    page.wait_for_selector("body[data-phase=ready]", timeout=15000)
    return page, errors


def screenshot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=True)


@pytest.mark.timeout(120)
def test_page_fetches_a_token_and_says_clearly_that_livekit_is_unreachable(
    browser: Any, talk_server: TalkServer
) -> None:
    page, errors = open_page(browser, talk_server.url)
    # the bundle loaded and ran: no uncaught error, nothing logged, no missing resource
    assert errors.uncaught == [] and errors.console == []
    assert page.evaluate("window.isSecureContext") is True
    assert page.is_hidden("#https-notice")  # localhost may use the microphone

    with page.expect_response("**/api/token") as response_info:
        page.click("#connect")
    token = response_info.value.json()
    claims = api.TokenVerifier(API_KEY, API_SECRET).verify(token["token"])
    assert claims.video is not None and claims.video.room == token["room"]
    assert token["url"] == f"ws://localhost:{talk_server.livekit_port}"

    page.wait_for_selector("body[data-phase=error]", timeout=30000)
    message = page.inner_text("#error")
    assert f"Could not reach the LiveKit server at {token['url']}" in message
    assert "livekit-server --dev" in message
    assert page.is_enabled("#connect")  # it can be tried again
    assert page.inner_text("#agent-state") == "not connected"
    screenshot(page, "talk-unreachable.png")
    # the failed connection is logged by the browser and livekit-client; nothing was uncaught
    assert errors.uncaught == []


@pytest.mark.timeout(120)
def test_page_over_plain_http_from_another_host_explains_the_https_requirement(
    browser: Any, talk_server: TalkServer
) -> None:
    lan_url = talk_server.url.replace("localhost", "talk-lan.test")
    page, errors = open_page(browser, lan_url)
    assert page.evaluate("window.isSecureContext") is False
    notice = page.inner_text("#https-notice")
    assert "The microphone needs HTTPS." in notice
    assert "--certfile" in notice and "ssh -L" in notice
    assert lan_url.rstrip("/") in notice  # names the origin it was opened from
    with page.expect_response("**/api/token") as response_info:
        page.click("#connect")
    # LIVEKIT_URL says localhost: for this browser that is the host it loaded the page from
    assert response_info.value.json()["url"] == f"ws://talk-lan.test:{talk_server.livekit_port}"
    page.wait_for_selector("body[data-phase=error]", timeout=30000)
    screenshot(page, "talk-lan-http.png")
    assert errors.uncaught == []


@pytest.mark.timeout(120)
def test_page_shows_the_agents_state_tool_status_and_latency_from_its_messages(
    browser: Any, talk_server: TalkServer
) -> None:
    """The agent's own messages (made by `RoomEvents`) through the page's data handler: the
    part of a live session that can be shown without a LiveKit server."""
    payloads: list[bytes] = []

    async def record(payload: bytes) -> None:
        payloads.append(payload)

    async def agent_side() -> None:
        events = RoomEvents(record)
        events.tool_started(call_id="c1", name="get_weather")
        await events.aclose()
        events.tool_finished(call_id="c1", name="get_weather", outcome="ok", duration=0.41)
        events.tool_started(call_id="c2", name="set_lights")
        events.tool_finished(call_id="c2", name="set_lights", outcome="timeout", duration=10.0)
        await events.aclose()

    # Playwright's sync API owns this thread's event loop
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, agent_side()).result(timeout=10)
    page, errors = open_page(browser, talk_server.url)

    def deliver(payload: bytes, topic: str = EVENTS_TOPIC) -> None:
        page.evaluate(
            "([bytes, topic]) => window.talkPage.onData(new Uint8Array(bytes), topic)",
            [list(payload), topic],
        )

    page.evaluate("window.talkPage.setAgentState('thinking')")
    assert page.inner_text("#agent-state") == "thinking"
    deliver(payloads[0])
    assert page.inner_text("#tool") == "Running get_weather…"
    deliver(b'{"type": "tool", "phase": "started", "name": "x", "call_id": "z"}', "other")
    deliver(b"not json")
    assert page.inner_text("#tool") == "Running get_weather…"  # others' data is ignored
    screenshot(page, "talk-tool-running.png")
    deliver(payloads[1])
    assert page.inner_text("#tool") == ""  # a tool that succeeded leaves no trace
    deliver(payloads[2])
    deliver(payloads[3])
    assert page.inner_text("#tool") == "set_lights: timeout"
    deliver(json.dumps({"type": "latency", "eos_to_first_audio_ms": 812.4}).encode())
    page.evaluate("window.talkPage.setAgentState('speaking')")
    assert page.inner_text("#agent-state") == "speaking"
    assert page.inner_text("#latency tbody").split() == ["1", "812", "ms", "–"]
    assert errors.uncaught == []


@pytest.mark.timeout(120)
def test_page_shows_both_sides_of_the_transcript_and_the_browsers_turn_latency(
    browser: Any, talk_server: TalkServer
) -> None:
    """`lk.transcription` text streams as livekit-client hands them to the page: a user
    segment (interim, then final) and an agent segment that arrives in pieces."""
    page, errors = open_page(browser, talk_server.url)
    page.evaluate(
        """async () => {
          const stream = (id, final, chunks) => ({
            info: {id, attributes: {"lk.segment_id": id, "lk.transcription_final": String(final)}},
            async *[Symbol.asyncIterator]() { for (const c of chunks) yield c; },
          });
          const page = window.talkPage;
          await page.showTranscript(stream("u1", false, ["what time"]), true);
          await page.showTranscript(stream("u1", true, ["What time is it?"]), true);
          page.setAgentState("thinking");
          await page.showTranscript(stream("a1", false, ["It is ", "noon"]), false);
          page.setAgentState("speaking");
        }"""
    )
    items = page.query_selector_all("#transcript li")
    shown = [
        (
            li.get_attribute("class"),
            li.eval_on_selector(".who", "e => e.textContent"),
            li.eval_on_selector(".text", "e => e.textContent"),
        )
        for li in items
    ]
    assert shown == [("you", "You", "What time is it?"), ("agent interim", "Agent", "It is noon")]
    # your final words, then the agent speaking: the browser's measure of the turn
    cells = page.inner_text("#latency tbody").split()
    assert cells[0] == "1" and cells[1] == "–" and cells[-1] == "ms"
    assert int(cells[2]) >= 0
    screenshot(page, "talk-transcript.png")
    assert errors.uncaught == []


NPM = shutil.which("npm")


@pytest.mark.timeout(300)
@pytest.mark.skipif(NPM is None, reason="npm is not installed")
def test_committed_bundle_is_what_the_pinned_sources_build(tmp_path: Path) -> None:
    """The page's script is rebuilt from package-lock.json (npm registry) and src/: the
    committed bytes must be exactly what that gives, so the bundle is never stale."""
    web = Path(__file__).resolve().parents[1] / "agent" / "commands" / "talk" / "web"
    for name in ("package.json", "package-lock.json", "build.sh", "src"):
        src = web / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp_path / name)
    out = tmp_path / "talk.js"
    subprocess.run(["bash", str(tmp_path / "build.sh"), str(out)], check=True, timeout=240)
    assert out.read_bytes() == (web.parent / "static" / "talk.js").read_bytes()
