from __future__ import annotations

import gc
import logging
from collections.abc import Iterator

import hypothesis  # noqa: F401  (imported now, not while pytest writes its summary: see below)
import pytest
import structlog

from testing.servers.openai_server import ScriptedLLMServer
from testing.servers.whisper_server import WhisperServer


@pytest.fixture
def llm_server() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as server:
        yield server


@pytest.fixture(scope="session")
def whisper_server() -> Iterator[WhisperServer]:
    """One real Whisper server for the whole run (the voice and the room tests)."""
    server = WhisperServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """For a test that configures logging: the root logger and structlog are put back as
    they were, so the tests after it log (and capture logs) as before."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    structlog_config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**structlog_config)


def pytest_sessionfinish(session: pytest.Session) -> None:
    # CPython 3.11.7 (gh-106905): a garbage-collected session object whose finalizer logs
    # while pytest's assertion rewriter runs `ast.parse` fails the whole run with
    # "AST constructor recursion depth mismatch". Collect before the summary imports more.
    gc.collect()
