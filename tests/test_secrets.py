"""A canary key through every fault: it never shows in stdout, stderr, logs or speech."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testing.cli import chat_env, chat_ok, run_cli
from testing.servers.faults import FAULTS
from testing.servers.openai_server import ScriptedLLMServer, ToolCall, text_reply, tool_reply

CANARY = "sk-canary-5d41402abc4b2a76"
BACKUP_CANARY = "gsk_canary_7e57c0ffee0ddba11"


@pytest.mark.parametrize("with_fallback", [False, True], ids=["single", "with-fallback"])
def test_canary_keys_never_leak_through_any_fault(
    llm_server: ScriptedLLMServer, tmp_path: Path, with_fallback: bool
) -> None:
    bad_tool_call = tool_reply(ToolCall("get_current_time", {"timezone": "Nowhere/Void"}))
    turns = [*FAULTS.values(), bad_tool_call]
    llm_server.script(*turns)
    env = chat_env(llm_server, LLM_API_KEY=CANARY, LOG_LEVEL="debug", LLM_TIMEOUT="1")
    if with_fallback:
        with ScriptedLLMServer(default=text_reply("Backup.")) as backup:
            entry = {"provider": "groq", "base_url": backup.base_url, "model": "b"}
            env |= {"LLM_FALLBACKS": json.dumps([entry]), "GROQ_API_KEY": BACKUP_CANARY}
            result = run_cli(["chat"], env=env, stdin="Hi\n" * len(turns), cwd=tmp_path)
            assert any(
                r.headers["authorization"] == f"Bearer {BACKUP_CANARY}" for r in backup.requests
            )
    else:
        result = chat_ok(env, cwd=tmp_path, stdin="Hi\n" * len(turns))
    assert len(result.stdout.splitlines()) == len(turns)  # one spoken reply per turn
    assert llm_server.requests[0].headers["authorization"] == f"Bearer {CANARY}"
    for secret in (CANARY, BACKUP_CANARY):
        assert secret not in result.stdout
        assert secret not in result.stderr
        # nor a recognisable piece of it
        assert secret[-12:] not in result.stdout + result.stderr
