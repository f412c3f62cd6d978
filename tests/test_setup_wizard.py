"""`voice-agent setup`: discovery against real servers on 127.0.0.1, the wizard driven in a
pseudo-terminal, `--scan`, the scripted form, and the `.env` it writes."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pexpect
import pytest
from dotenv import dotenv_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.commands.setup.envfile import render
from providers.discovery import KnownPort, candidates, discover
from testing.cli import VOICE_AGENT, chat_env, run_cli
from testing.polling import free_port
from testing.servers.backends import (
    KeyedLLMServer,
    LiveKitHealthServer,
    OllamaServer,
)
from testing.servers.openai_server import Reply, ScriptedLLMServer, Status

KEY = "sk-test-4f9d1c0e7b2a"
EXISTING_ENV = """\
# my settings
LLM_PROVIDER=openai-compatible
LLM_BASE_URL=http://old-server:8000/v1
LLM_MODEL=old-model
AGENT_GREETING="Hello there, friend"
export LOG_LEVEL=debug
"""


@pytest.fixture
def ollama() -> Iterator[OllamaServer]:
    with OllamaServer() as server:
        yield server


@pytest.fixture
def keyed() -> Iterator[KeyedLLMServer]:
    with KeyedLLMServer(api_key=KEY) as server:
        yield server


def setup_env() -> dict[str, str]:
    env = chat_env()
    for name in ("LLM_BASE_URL", "LLM_MODEL", "LLM_MAX_RETRIES", "LLM_TIMEOUT"):
        env.pop(name, None)
    return {k: v for k, v in env.items() if not k.startswith(("STT_", "TTS_", "LIVEKIT_"))}


# --- discovery -------------------------------------------------------------------------


@pytest.mark.timeout(30)
async def test_discover_reports_each_usual_port_with_its_kind_models_and_state(
    ollama: OllamaServer, keyed: KeyedLLMServer
) -> None:
    down = free_port()
    with (
        ScriptedLLMServer(model="Systran/faster-whisper-small") as speaches,
        ScriptedLLMServer(model="Qwen/Qwen2.5-7B-Instruct") as vllm,
        LiveKitHealthServer() as livekit,
        ScriptedLLMServer() as added,
    ):
        ports = [
            KnownPort(port=ollama.port, kind="ollama"),
            KnownPort(port=speaches.port, kind="vllm-or-speaches"),
            KnownPort(port=vllm.port, kind="vllm-or-speaches"),
            KnownPort(port=keyed.port, kind="litellm"),
            KnownPort(port=down, kind="lm-studio"),
            KnownPort(port=livekit.port, kind="livekit"),
        ]
        targets = candidates(["127.0.0.1"], [f"http://127.0.0.1:{added.port}/v1/"], ports=ports)
        found = await discover(targets, request_timeout=2.0)

    by_port = {int(s.url.rsplit(":", 1)[1]): s for s in found}
    assert (by_port[ollama.port].kind, by_port[ollama.port].status) == ("ollama", "ok")
    assert by_port[ollama.port].models == ("llama3.2", "qwen2.5:7b")
    assert by_port[speaches.port].kind == "speaches"
    assert by_port[speaches.port].models_for("stt") == ["Systran/faster-whisper-small"]
    assert by_port[vllm.port].kind == "vllm"
    assert by_port[vllm.port].roles == {"llm"}
    assert (by_port[keyed.port].status, by_port[keyed.port].detail) == ("needs-key", "HTTP 401")
    assert by_port[down].status == "down"
    assert "refused" in by_port[down].detail
    assert (by_port[livekit.port].kind, by_port[livekit.port].status) == ("livekit", "ok")
    # an added URL is normalised to its root and its kind found from its answers
    assert by_port[added.port].url == f"http://127.0.0.1:{added.port}"
    assert by_port[added.port].kind == "openai-compatible"
    assert len(found) == len(targets)


@pytest.mark.timeout(30)
async def test_discover_gives_up_on_a_server_that_never_answers() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts connections, never answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        [server] = await discover([("", url)], request_timeout=0.5)
    finally:
        listener.close()
    assert (server.status, server.detail) == ("down", "timed out")


# --- .env -------------------------------------------------------------------------------


def test_env_render_keeps_unowned_lines_and_replaces_owned_ones_in_place(tmp_path: Path) -> None:
    text = render(
        EXISTING_ENV + "LLM_MODEL=duplicate\n",
        {"LLM_PROVIDER": "ollama", "LLM_MODEL": "qwen2.5:7b", "LLM_BASE_URL": "", "X": "a b#c"},
    )
    lines = text.splitlines()
    assert lines[0] == "# my settings"
    assert lines[1:4] == ["LLM_PROVIDER=ollama", "LLM_BASE_URL=", "LLM_MODEL=qwen2.5:7b"]
    assert 'AGENT_GREETING="Hello there, friend"' in lines
    assert "export LOG_LEVEL=debug" in lines
    assert "LLM_MODEL=duplicate" not in text  # a later duplicate would have won
    path = tmp_path / ".env"
    path.write_text(text)
    values = dotenv_values(path)
    assert values["X"] == "a b#c"
    assert values["LLM_MODEL"] == "qwen2.5:7b"
    assert values["AGENT_GREETING"] == "Hello there, friend"


# --- the command ---------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_scan_prints_one_line_per_server_and_writes_nothing(
    tmp_path: Path, ollama: OllamaServer, keyed: KeyedLLMServer
) -> None:
    (tmp_path / ".env").write_text(EXISTING_ENV)
    down = f"http://127.0.0.1:{free_port()}"
    urls = [f"http://127.0.0.1:{ollama.port}", f"http://127.0.0.1:{keyed.port}/v1", down]
    args = ["setup", "--scan", "--no-port-scan", *(a for u in urls for a in ("--url", u))]
    result = run_cli(args, env=setup_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout
    assert lines[0].split()[:3] == ["ollama", urls[0], "ok"]
    assert "llama3.2, qwen2.5:7b" in lines[0]
    assert lines[1].split()[:2] == ["openai-compatible", f"http://127.0.0.1:{keyed.port}"]
    assert "needs a key (HTTP 401)" in lines[1]
    assert lines[2].split()[:3] == ["openai-compatible", down, "down"]
    assert (tmp_path / ".env").read_text() == EXISTING_ENV
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]


@contextmanager
def setup_at_a_terminal(
    tmp_path: Path, *args: str, log: IO[str] | None = None
) -> Iterator[pexpect.spawn]:
    """`voice-agent setup` in a terminal, for the block to answer; it must then end, and
    exit 0. `log` gets what the terminal showed."""
    child = pexpect.spawn(
        VOICE_AGENT,
        ["setup", "--no-port-scan", *args],
        env=setup_env(),
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=60,  # per answer awaited: start-up imports livekit, slow on a loaded machine
        dimensions=(50, 200),
    )
    child.logfile_read = log
    try:
        yield child
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


@pytest.mark.timeout(180)
def test_wizard_in_a_terminal_unlocks_a_keyed_server_tests_it_and_updates_env(
    tmp_path: Path, ollama: OllamaServer, keyed: KeyedLLMServer
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(EXISTING_ENV)
    down = f"http://127.0.0.1:{free_port()}"
    with setup_at_a_terminal(
        tmp_path,
        "--url", f"http://127.0.0.1:{ollama.port}",
        "--url", f"http://127.0.0.1:{keyed.port}",
        "--url", down,
    ) as child:  # fmt: skip
        child.expect(f"{down} +down")
        child.expect_exact("Add a server's URL")
        child.sendline("")
        child.expect_exact("LLM (the model that answers):")
        child.expect(r"2\) openai-compatible +http://127.0.0.1:\d+ +needs a key")
        child.expect_exact("Choose 1-6 [1]:")
        child.sendline("2")  # the keyed server
        child.expect_exact("(typing is hidden):")
        child.sendline("wrong-key")
        child.expect_exact("refused the key (HTTP 401)")
        child.expect_exact("Choose 1-6 [1]:")  # asked again
        child.sendline("2")
        child.expect_exact("(typing is hidden):")
        child.sendline(KEY)
        child.expect_exact("Model: keyed-model")
        child.expect(r"ok +model keyed-model listed")
        child.expect_exact("STT (speech to text):")
        child.expect_exact("keep the current setting")
        child.expect_exact("]:")
        child.sendline("")  # nothing serves STT here: keeping is the default
        child.expect_exact("TTS (text to speech):")
        child.expect_exact("]:")
        child.sendline("")
        child.expect_exact("LLM_API_KEY=****** (hidden)")
        child.expect_exact("Write")
        child.sendline("y")
        child.expect_exact("Backed up the previous file to")
        child.expect_exact("Wrote .env. Next: voice-agent check")
    values = dotenv_values(env_file)
    assert values["LLM_PROVIDER"] == "openai-compatible"
    assert values["LLM_BASE_URL"] == f"http://127.0.0.1:{keyed.port}/v1"
    assert values["LLM_MODEL"] == "keyed-model"
    assert values["LLM_API_KEY"] == KEY
    # lines the wizard does not own are kept, in place
    assert env_file.read_text().startswith("# my settings\n")
    assert values["AGENT_GREETING"] == "Hello there, friend"
    assert values["LOG_LEVEL"] == "debug"
    assert "STT_PROVIDER" not in values  # kept: not written
    assert (tmp_path / ".env.bak").read_text() == EXISTING_ENV
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert keyed.refused >= 2  # the scan, and the wrong key


@pytest.mark.timeout(180)
def test_wizard_takes_a_url_at_its_prompt_and_never_echoes_the_key_it_was_given(
    tmp_path: Path, keyed: KeyedLLMServer
) -> None:
    log_path = tmp_path / "terminal.log"
    with log_path.open("w") as log, setup_at_a_terminal(tmp_path, log=log) as child:
        child.expect_exact("Add a server's URL")
        child.sendline(f"127.0.0.1:{keyed.port}/v1")  # added at the prompt, bare host:port
        child.expect(rf"openai-compatible +http://127.0.0.1:{keyed.port} +needs a key")
        child.expect_exact("Add a server's URL")
        child.sendline("")
        child.expect_exact("Choose 1-5 [1]:")
        child.sendline("1")
        child.expect_exact("(typing is hidden):")
        child.sendline(KEY)
        for _ in range(2):  # STT, TTS: keep
            child.expect_exact("]:")
            child.sendline("")
        child.expect_exact("Write")
        child.sendline("n")
        child.expect_exact("Nothing written.")
    terminal = log_path.read_text()
    assert "ok   model keyed-model listed" in terminal
    assert KEY not in terminal
    assert not (tmp_path / ".env").exists()


@pytest.mark.timeout(120)
def test_scripted_setup_writes_the_named_choice_without_asking(
    tmp_path: Path, ollama: OllamaServer
) -> None:
    url = f"http://127.0.0.1:{ollama.port}"
    result = run_cli(
        ["setup", "--no-port-scan", "--url", url, "--llm", "ollama:qwen2.5:7b", "--yes"],
        env=setup_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    values = dotenv_values(tmp_path / ".env")
    assert values["LLM_PROVIDER"] == "ollama"
    assert values["LLM_MODEL"] == "qwen2.5:7b"
    assert values["LLM_BASE_URL"] == f"{url}/v1"
    assert values["LLM_API_KEY"] == ""
    # the file written is one the runtime loads
    assert "Wrote .env. Next: voice-agent check" in result.stdout
    assert not (tmp_path / ".env.bak").exists()  # there was nothing to back up
    assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o644  # no key in it


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ollama:llama3.2@http://127.0.0.1:{down}", "down (connection refused"),
        ("groq", "GROQ_API_KEY"),
        ("openai-compatible:nope@http://127.0.0.1:{keyed}", "needs-key (HTTP 401)"),
    ],
)
def test_scripted_setup_that_cannot_be_done_writes_nothing(
    tmp_path: Path, keyed: KeyedLLMServer, spec: str, message: str
) -> None:
    (tmp_path / ".env").write_text(EXISTING_ENV)
    spec = spec.format(down=free_port(), keyed=keyed.port)
    env = {k: v for k, v in setup_env().items() if not k.startswith("GROQ")}
    result = run_cli(["setup", "--no-port-scan", "--llm", spec, "--yes"], env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr, result.stderr
    assert (tmp_path / ".env").read_text() == EXISTING_ENV
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]


@pytest.mark.timeout(120)
def test_scripted_setup_with_a_failing_test_writes_nothing(
    tmp_path: Path, ollama: OllamaServer
) -> None:
    """Not listed by the server, and refused when asked: the probe's completion fails."""
    ollama.default = Reply.of(Status(500))
    url = f"http://127.0.0.1:{ollama.port}"
    result = run_cli(
        ["setup", "--no-port-scan", "--url", url, "--llm", "ollama:not-pulled", "--yes"],
        env=setup_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "FAIL HTTP 500" in result.stdout
    assert "the test failed; nothing written" in result.stderr
    assert not (tmp_path / ".env").exists()
    assert os.listdir(tmp_path) == []


@pytest.mark.timeout(180)
def test_scripted_tts_choice_is_tested_by_speaking_a_phrase(tmp_path: Path) -> None:
    pytest.importorskip("testing.servers.tts_server")
    from testing.servers.tts_server import EspeakTTSServer

    with EspeakTTSServer() as tts:
        url = f"http://127.0.0.1:{tts.port}"
        result = run_cli(
            ["setup", "--no-port-scan", "--tts", f"kokoro@{url}", "--yes"],
            env=setup_env(),
            cwd=tmp_path,
        )
        spoken = tts.texts
    assert result.returncode == 0, result.stdout + result.stderr
    assert spoken == ["Hello."]  # check's TTS probe, through livekit's plugin
    assert "s of audio" in result.stdout
    values = dotenv_values(tmp_path / ".env")
    assert values["TTS_PROVIDER"] == "kokoro"
    assert values["TTS_BASE_URL"] == f"{url}/v1"
    assert (values["TTS_MODEL"], values["TTS_VOICE"]) == ("kokoro", "af_heart")
    assert "LLM_PROVIDER" not in values  # only what was named is written


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")))
def test_any_value_written_reads_back_unchanged(tmp_path: Path, value: str) -> None:
    path = tmp_path / ".env"
    path.write_text(render(EXISTING_ENV, {"LLM_API_KEY": value, "LLM_MODEL": value}))
    values = dotenv_values(path)
    assert values["LLM_API_KEY"] == value
    assert values["LLM_MODEL"] == value
    assert values["AGENT_GREETING"] == "Hello there, friend"


@pytest.mark.timeout(180)
def test_wizard_asks_before_taking_a_choice_that_failed_its_test(
    tmp_path: Path, ollama: OllamaServer
) -> None:
    ollama.default = Reply.of(Status(500))  # a model that is listed but will not answer
    with setup_at_a_terminal(tmp_path, "--url", f"http://127.0.0.1:{ollama.port}") as child:
        child.expect_exact("Add a server's URL")
        child.sendline("")
        child.expect_exact("Choose 1-5 [1]:")
        child.sendline("1")
        child.expect_exact("Model 1-2 [1]:")
        child.sendline("2")  # qwen2.5:7b: in Ollama's list, not in /v1/models: asked to answer
        child.expect_exact("FAIL HTTP 500")
        child.expect_exact("Use it anyway? (y/N):")
        child.sendline("")
        child.expect_exact("Choose 1-5 [1]:")  # back to the choice
        child.sendline("5")  # keep
        for _ in range(2):  # STT, TTS: keep
            child.expect_exact("]:")
            child.sendline("")
        child.expect_exact("Nothing to change; nothing written.")
    assert list(tmp_path.iterdir()) == []
