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


def xdist_group_for(item: pytest.Item) -> str | None:
    """Which tests must run in one pytest-xdist worker (`--dist loadgroup`, see
    pyproject.toml): those that share a costly session server, so it starts once in one
    worker rather than once in each, and those that share a fixed resource."""
    path = item.path.as_posix()
    if "/tests/container/" in path:
        return "docker"  # one engine, one image build, the pip relay's fixed port
    if "/tests/room/" in path:
        return "livekit"  # the shared LiveKit server and worker (tests/room/conftest.py)
    if "whisper_server" in getattr(item, "fixturenames", ()):
        return "whisper"  # the session's Whisper server
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = xdist_group_for(item)
        if group is not None and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(group))


def pytest_sessionfinish(session: pytest.Session) -> None:
    # CPython 3.11.7 (gh-106905): a garbage-collected session object whose finalizer logs
    # while pytest's assertion rewriter runs `ast.parse` fails the whole run with
    # "AST constructor recursion depth mismatch". Collect before the summary imports more.
    gc.collect()
