""".env.example works as .env unchanged: it sets only defaults, and presets keep theirs."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from agent.config.settings import Settings, load_settings
from testing.cli import ROOT, chat_env, run_cli
from testing.servers.openai_server import ScriptedLLMServer, text_reply

EXAMPLE = ROOT / ".env.example"
OLLAMA_PORT = 11434


def _variables(pattern: str) -> set[str]:
    return set(re.findall(pattern, EXAMPLE.read_text(), re.MULTILINE))


def test_every_setting_is_documented_in_env_example() -> None:
    documented = _variables(r"^#?\s?([A-Z][A-Z0-9_]+)=")
    assert {name.upper() for name in Settings.model_fields} <= documented


def test_every_value_env_example_sets_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    # what every configuration needs anyway; the rest comes from the file or the defaults
    monkeypatch.setenv("LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("LLM_MODEL", "m")
    defaults = load_settings().model_dump()
    shutil.copy(EXAMPLE, tmp_path / ".env")
    assert load_settings().model_dump() == defaults


@pytest.mark.timeout(60)
def test_env_example_as_env_lets_llm_provider_ollama_reach_port_11434(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / ".env")
    server = ScriptedLLMServer(default=text_reply("Hello from Ollama's port."))
    server.port = OLLAMA_PORT
    try:
        server.start()
    except OSError:
        pytest.skip(f"port {OLLAMA_PORT} is taken on this machine")
    try:
        env = chat_env(None, LLM_PROVIDER="ollama")
        result = run_cli(["chat"], env=env, stdin="hi\n", cwd=tmp_path)
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == "Hello from Ollama's port.\n"
    assert [r.path for r in server.requests] == ["/v1/chat/completions"]
    assert server.requests[0].body["model"] == "llama3.2"  # the preset's default model
