from __future__ import annotations

import gc
from collections.abc import Iterator

import hypothesis  # noqa: F401  (imported now, not while pytest writes its summary: see below)
import pytest

from testing.servers.openai_server import ScriptedLLMServer


@pytest.fixture
def llm_server() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as server:
        yield server


def pytest_sessionfinish(session: pytest.Session) -> None:
    # CPython 3.11.7 (gh-106905): a garbage-collected session object whose finalizer logs
    # while pytest's assertion rewriter runs `ast.parse` fails the whole run with
    # "AST constructor recursion depth mismatch". Collect before the summary imports more.
    gc.collect()
