"""`voice-agent chat` through a real LiteLLM proxy, offline.

The proxy (the `litellm` CLI from `litellm[proxy]`) runs as a subprocess on
127.0.0.1 with a model whose `mock_response` LiteLLM streams itself, so no
upstream call is made. It starts once per module (about 8 s, mostly imports).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.polling import free_port

BIN_DIR = Path(sys.executable).parent
VOICE_AGENT = BIN_DIR / "voice-agent"
MODEL = "mock-model"
MASTER_KEY = "sk-litellm-test-master-3f9a2c7e"
MOCK_REPLY = "Hello from the LiteLLM mock."
STARTUP_DEADLINE_S = 60.0

PROXY_CONFIG = {
    "model_list": [
        {
            "model_name": MODEL,
            "litellm_params": {
                "model": f"openai/{MODEL}",
                "api_key": "unused-upstream-key",
                "mock_response": MOCK_REPLY,
            },
        }
    ],
    "general_settings": {"master_key": MASTER_KEY},
}


def _is_alive(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/health/liveliness")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


@pytest.fixture(scope="module")
def litellm_base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    litellm = shutil.which("litellm", path=str(BIN_DIR)) or shutil.which("litellm")
    if litellm is None:
        pytest.fail("the `litellm` CLI is missing: install the test extra (litellm[proxy])")
    workdir = tmp_path_factory.mktemp("litellm")
    config = workdir / "config.yaml"
    config.write_text(json.dumps(PROXY_CONFIG))  # JSON is YAML
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LITELLM_") and k not in ("DATABASE_URL", "DIRECT_URL")
    }
    # packaged cost map instead of a download; PRODUCTION: no `.env` search (DEV mode loads one)
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_MODE="PRODUCTION")
    port = free_port()
    log = workdir / "proxy.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [litellm, "--host", "127.0.0.1", "--port", str(port), "--config", str(config)],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while not _is_alive(port):
            if proc.poll() is not None:
                pytest.fail(f"litellm exited with {proc.returncode}:\n{_tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"litellm not ready after {STARTUP_DEADLINE_S:.0f} s:\n{_tail(log)}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"  # bare host: our provider appends /v1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _chat(base_url: str, cwd: Path, *, builtin_tools: bool) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LLM_", "AGENT_", "TOOL", "LOG_", "OPENAI", "GROQ", "OPENROUTER"))
    }
    env.update(
        LLM_PROVIDER="openai-compatible",
        LLM_BASE_URL=base_url,
        LLM_API_KEY=MASTER_KEY,
        LLM_MODEL=MODEL,
        BUILTIN_TOOLS=str(builtin_tools).lower(),
        LOG_FORMAT="json",
    )
    return subprocess.run(
        [str(VOICE_AGENT), "chat"],
        input="Hello\n",
        env=env,
        cwd=cwd,  # no stray .env
        capture_output=True,
        text=True,
        timeout=60,
    )


def _pass_kinds(stderr: str) -> list[str]:
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [e["pass_kind"] for e in events if e.get("event") == "llm pass"]


def _assert_mock_reply_without_key(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    assert result.stdout == MOCK_REPLY + "\n"
    assert MASTER_KEY not in result.stdout
    assert MASTER_KEY not in result.stderr


def test_chat_without_tools_exits_0_prints_exactly_the_mock_reply_in_one_plain_pass_hiding_key(
    litellm_base_url: str, tmp_path: Path
) -> None:
    result = _chat(litellm_base_url, tmp_path, builtin_tools=False)
    _assert_mock_reply_without_key(result)
    assert _pass_kinds(result.stderr) == ["speak-plain"]


def test_chat_with_tools_exits_0_prints_exactly_the_mock_reply_in_one_tool_pass_hiding_key(
    litellm_base_url: str, tmp_path: Path
) -> None:
    result = _chat(litellm_base_url, tmp_path, builtin_tools=True)
    _assert_mock_reply_without_key(result)
    # the request carried the tool schema and LiteLLM answered it: no fallback to a plain pass
    assert _pass_kinds(result.stderr) == ["tools"]
