from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import hypothesis  # noqa: F401  (imported now, not while pytest writes its summary: see below)
import pytest

from agent.turns import TurnEngine, TurnOptions
from providers import OpenAICompatibleProvider, ProviderOptions
from tests.servers.openai_server import ScriptedLLMServer

APOLOGY = "Sorry, something went wrong on my side."
FALLBACK = "I have nothing to add."
VOICE_AGENT = str(Path(sys.executable).parent / "voice-agent")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def llm_server() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as server:
        yield server


def make_engine(
    server: ScriptedLLMServer | str,
    *,
    timeout: float = 2.0,
    max_retries: int = 0,
    api_key: str = "not-needed",
    **turn_options: object,
) -> TurnEngine:
    base_url = server if isinstance(server, str) else server.base_url
    provider = OpenAICompatibleProvider(
        options=ProviderOptions(
            model="test-model",
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            retry_interval=0.05,
        )
    )
    opts: dict[str, object] = {"apology": APOLOGY, "fallback_reply": FALLBACK, "tool_timeout": 1.0}
    opts.update(turn_options)
    return TurnEngine(provider, TurnOptions(**opts))  # type: ignore[arg-type]


def chat_env(server: ScriptedLLMServer | None = None, **extra: str) -> dict[str, str]:
    """A clean environment for `voice-agent chat` pointed at `server`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LLM_", "AGENT_", "TOOL", "LOG_", "OPENAI", "GROQ", "OPENROUTER"))
    }
    if server is not None:
        env.update(LLM_BASE_URL=server.base_url, LLM_MODEL="test-model")
    # the checkout under test, whatever the installed copy points at
    env["PYTHONPATH"] = str(ROOT)
    env.update(LLM_MAX_RETRIES="0", LLM_TIMEOUT="2", LOG_FORMAT="json")
    env.update(extra)
    return env


def run_cli(
    args: list[str], *, env: Mapping[str, str], stdin: str = "", cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VOICE_AGENT, *args],
        input=stdin,
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    # CPython 3.11.7 (gh-106905): a garbage-collected session object whose finalizer logs
    # while pytest's assertion rewriter runs `ast.parse` fails the whole run with
    # "AST constructor recursion depth mismatch". Collect before the summary imports more.
    gc.collect()
