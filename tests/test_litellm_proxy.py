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

from testing.cli import chat_env, chat_ok
from testing.polling import free_port

BIN_DIR = Path(sys.executable).parent
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


def _pass_kinds(stderr: str) -> list[str]:
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [e["pass_kind"] for e in events if e.get("event") == "llm pass"]


@pytest.mark.parametrize(
    ("builtin_tools", "passes"),
    # with tools, the request carried the tool schema and LiteLLM answered it: no fallback
    # to a plain pass
    [(False, ["speak-plain"]), (True, ["tools"])],
    ids=["plain-pass", "tool-pass"],
)
def test_chat_exits_0_prints_exactly_the_mock_reply_in_one_pass_hiding_key(
    litellm_base_url: str, tmp_path: Path, builtin_tools: bool, passes: list[str]
) -> None:
    env = chat_env(
        LLM_PROVIDER="openai-compatible",
        LLM_BASE_URL=litellm_base_url,
        LLM_API_KEY=MASTER_KEY,
        LLM_MODEL=MODEL,
        LLM_TIMEOUT="30",  # the proxy answers slowly on a busy machine
        BUILTIN_TOOLS=str(builtin_tools).lower(),
    )
    result = chat_ok(env, cwd=tmp_path)  # tmp_path: no stray .env
    assert result.stdout == MOCK_REPLY + "\n"
    assert MASTER_KEY not in result.stdout + result.stderr
    assert _pass_kinds(result.stderr) == passes
