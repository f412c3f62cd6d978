"""The worker process as a supervisor sees it: exit status and configuration errors."""

from __future__ import annotations

import pytest

from testing.cli import ROOT, chat_env, run_cli
from testing.polling import free_port
from testing.servers.openai_server import ScriptedLLMServer

pytestmark = pytest.mark.timeout(120)


def test_worker_exits_nonzero_when_livekit_stays_unreachable(
    llm_server: ScriptedLLMServer,
) -> None:
    url = f"ws://127.0.0.1:{free_port()}"
    env = chat_env(llm_server, LIVEKIT_URL=url, WORKER_CONNECT_RETRIES="1", WORKER_PORT="0")
    result = run_cli(["start"], env=env, cwd=ROOT, timeout=90)
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"voice-agent: worker stopped: LiveKit unreachable at {url} after 2 attempts "
        "(WORKER_CONNECT_RETRIES=1)"
    )


def test_worker_refuses_to_start_without_llm_base_url_naming_the_variable() -> None:
    result = run_cli(["start"], env=chat_env(None, LLM_MODEL="m"), cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("voice-agent: configuration error: LLM_BASE_URL:")
