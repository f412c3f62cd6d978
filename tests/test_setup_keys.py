"""`voice-agent setup` against servers that list hostile model ids, and with keys that are
already set: the id is written as text (never a reference the app would expand), it
reaches the terminal escaped, and a working key is neither lost nor silently copied."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from dotenv import dotenv_values
from hypothesis import given
from hypothesis import strategies as st

from agent.commands.setup import SetupOptions, Wizard, choices, scan_line
from agent.commands.setup.console import Console
from agent.config import backends
from agent.config.resolved import load_config
from providers import PRESETS
from providers.discovery import Server
from testing.cli import chat_env, run_cli
from testing.servers.backends import KeyedLLMServer, OllamaServer
from testing.servers.openai_server import Reply, ScriptedLLMServer, Status, text_reply

SECRET = "lk-secret-do-not-send-7d1e4b"
KEY = "gsk-working-key-3a9f0c21"
# what a hostile server could list: a terminal title (OSC), a screen clear, a colour, a
# carriage return that hides what came before it
ESCAPES = "m\x1b]0;owned\x07\x1b[2J\x1b[31mred\rhidden"


def setup_env(**extra: str) -> dict[str, str]:
    env = chat_env(None, **extra)
    for name in ("LLM_BASE_URL", "LLM_MODEL", "LLM_MAX_RETRIES", "LLM_TIMEOUT"):
        env.pop(name, None)
    return {
        k: v for k, v in env.items() if not k.startswith(("STT_", "TTS_", "LIVEKIT_")) or k in extra
    }


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """An in-process wizard's environment: no backend or vendor variables from the shell."""
    import os

    for name in list(os.environ):
        if name.startswith(("LLM_", "STT_", "TTS_", "LIVEKIT_", "GROQ", "OPENAI", "OPENROUTER")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield tmp_path / ".env"


@pytest.mark.timeout(180)
def test_a_listed_model_id_holding_an_env_reference_never_sends_the_secret(
    tmp_path: Path,
) -> None:
    """The server lists `llama3.2:${LIVEKIT_API_SECRET}`; the scripted setup takes it; the
    agent then sends that id as text, not the secret."""
    model = "llama3.2:${LIVEKIT_API_SECRET}"
    (tmp_path / ".env").write_text(f"LIVEKIT_API_SECRET={SECRET}\n")
    with ScriptedLLMServer(model=model, default=text_reply("Hello.")) as server:
        result = run_cli(
            ["setup", "--no-port-scan", "--llm", f"openai-compatible@{server.origin}", "--yes"],
            env=setup_env(),
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        chat = run_cli(["chat"], env=setup_env(), stdin="Hi\n", cwd=tmp_path)
        assert chat.returncode == 0, chat.stderr[-2000:]
        sent = [r.body for r in server.requests]
    assert dotenv_values(tmp_path / ".env")["LLM_MODEL"] == model
    assert chat.stdout == "Hello.\n"
    assert sent and sent[-1]["model"] == model
    assert SECRET not in json.dumps(sent)


@pytest.mark.timeout(120)
def test_server_model_ids_reach_the_terminal_escaped(tmp_path: Path) -> None:
    with ScriptedLLMServer(model=ESCAPES) as server:
        scan = run_cli(
            ["setup", "--scan", "--no-port-scan", "--url", server.origin],
            env=setup_env(),
            cwd=tmp_path,
        )
        scripted = run_cli(
            ["setup", "--no-port-scan", "--llm", f"openai-compatible@{server.origin}", "--yes"],
            env=setup_env(),
            cwd=tmp_path,
        )
    assert scan.returncode == 0 and scripted.returncode == 0, scripted.stderr
    for out in (scan.stdout, scripted.stdout):
        assert "\x1b" not in out and "\r" not in out and "\x07" not in out
        assert r"m\x1b]0;owned\x07\x1b[2J\x1b[31mred\rhidden" in out
    # the file keeps the id as it is: escaping is for the terminal only
    assert dotenv_values(tmp_path / ".env")["LLM_MODEL"] == ESCAPES


@pytest.mark.timeout(60)
async def test_the_wizards_model_menu_shows_ids_escaped(clean_env: Path) -> None:
    out = io.StringIO()
    answers = iter(["", "1", "1", "", "", "n"])  # no URL; the server; its 1st model; keep; keep
    console = Console(out=out, read_line=lambda _: next(answers), read_secret=lambda _: "")
    with OllamaServer(models=(ESCAPES, "plain\u2028model")) as ollama:
        options = SetupOptions(env_file=clean_env, urls=(ollama.origin,), port_scan=False)
        assert await Wizard(options, console).run() == 0
    shown = out.getvalue()
    assert "\x1b" not in shown and "\r" not in shown and "\u2028" not in shown
    assert r"1) m\x1b]0;owned\x07" in shown
    assert r"2) plain\u2028model" in shown


@pytest.mark.timeout(60)
async def test_choosing_the_same_cloud_again_keeps_its_working_key(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`.env` says groq with a working LLM_API_KEY; `setup --llm groq --yes` tests that key
    and must leave it there (it used to write it blank: start-up then failed)."""
    groq = PRESETS["groq"]
    with KeyedLLMServer(api_key=KEY, model=groq.default_model or "m") as cloud:
        # Groq's API, on this machine: the real probe, the real key check
        local = {**PRESETS, "groq": dataclasses.replace(groq, default_base_url=cloud.base_url)}
        monkeypatch.setattr(choices, "PRESETS", local)
        monkeypatch.setattr(backends, "PRESETS", local)
        await asyncio.to_thread(clean_env.write_text, f"LLM_PROVIDER=groq\nLLM_API_KEY={KEY}\n")
        out = io.StringIO()
        options = SetupOptions(
            env_file=clean_env, port_scan=False, specs=(("llm", "groq"),), yes=True
        )
        assert await Wizard(options, Console(out=out)).run() == 0
    assert dotenv_values(clean_env)["LLM_API_KEY"] == KEY
    assert "voice-agent will not start" not in out.getvalue()
    assert "Next: voice-agent check" in out.getvalue()
    assert load_config(_env_file=clean_env).backends.llm_backends[0].options.api_key == KEY
    assert KEY not in out.getvalue()


@pytest.mark.timeout(120)
def test_a_key_only_in_the_shell_is_used_but_not_copied_into_env(tmp_path: Path) -> None:
    with KeyedLLMServer(api_key=KEY) as server:
        result = run_cli(
            ["setup", "--no-port-scan", "--llm", f"openai-compatible@{server.origin}", "--yes"],
            env=setup_env(LLM_API_KEY=KEY),
            cwd=tmp_path,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   model keyed-model listed" in result.stdout  # the shell's key was used
    assert "Using LLM_API_KEY from the environment; it is not written to .env" in result.stdout
    assert KEY not in (tmp_path / ".env").read_text()
    assert KEY not in result.stdout


@pytest.mark.timeout(120)
def test_check_prints_a_servers_error_message_escaped(tmp_path: Path) -> None:
    error = {"error": {"message": f"no such model {ESCAPES}", "type": "invalid"}}
    with ScriptedLLMServer(default=Reply.of(Status(404, error))) as server:
        env = chat_env(None, LLM_BASE_URL=server.base_url, LLM_MODEL="not-listed")
        result = run_cli(["check"], env=env, cwd=tmp_path)
    line = next(x for x in result.stdout.splitlines() if x.startswith("llm "))
    assert "FAIL" in line and "no such model" in line, result.stdout
    assert "\x1b" not in result.stdout and "\r" not in result.stdout
    assert r"\x1b]0;owned\x07" in line


ESCAPE_PIECES = ["\x1b[", "\x1b]0;", "\x07", "\x1b\\", "\x9b", "\x9d", "\r", "\n", "\t",
                 "\x00", "\x7f", "\u2028", "\u202e", "\u2066", "31m", "2J", "a", ":", "/",
                 "\\"]  # fmt: skip
model_ids = st.one_of(
    st.lists(st.sampled_from(ESCAPE_PIECES), min_size=1, max_size=12).map("".join),
    st.text(st.characters(blacklist_categories=["Cs"]), min_size=1),
)


@given(model=model_ids)
def test_any_listed_model_id_reaches_the_terminal_without_a_control_character(
    model: str,
) -> None:
    server = Server(kind="ollama", url="http://127.0.0.1:11434", status="ok", models=(model,))
    out = io.StringIO()
    console = Console(out=out, read_line=lambda _: "1")
    console.say(scan_line(server))  # --scan, and the list at the start
    assert console.pick("Model", [model, "other"]) == 0  # the model menu
    shown = out.getvalue()
    for char in shown.replace("\n", ""):
        assert unicodedata.category(char) not in ("Cc", "Zl", "Zp"), repr(char)
        assert not 0x202A <= ord(char) <= 0x202E and not 0x2066 <= ord(char) <= 0x2069
    # what was printable is shown as it is
    if model.isprintable():
        assert model in shown
