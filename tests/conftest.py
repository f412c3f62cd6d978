from __future__ import annotations

import functools
import gc
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis  # noqa: F401  (imported now, not while pytest writes its summary: see below)
import pytest
import structlog

from testing.servers.openai_server import ScriptedLLMServer
from testing.servers.whisper_server import WhisperServer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def llm_server() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as server:
        yield server


@pytest.fixture(scope="session")
def whisper_server() -> Iterator[WhisperServer]:
    """One real Whisper server for the whole run (the voice and the room tests)."""
    with WhisperServer() as server:
        yield server


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


SHARED_BY_FOLDER = {"tests/container/": "docker", "tests/room/": "livekit"}
"""Folders whose tests share one costly thing: the Docker engine, its image build and the
pip relay's fixed port (container); the LiveKit server and worker (tests/room/conftest.py)."""
SHARED_BY_FIXTURE = {"whisper_server": "whisper"}
"""Session fixtures that start a costly server: the modules that ask for one share it."""


@functools.cache
def shared_group(module: str) -> str | None:
    """The group whose tests run in one worker process (so that what they share starts
    once, not once in each process), for a test module's path relative to the root."""
    for folder, group in SHARED_BY_FOLDER.items():
        if module.startswith(folder):
            return group
    source = (ROOT / module).read_text()
    if marked := re.search(r"""xdist_group\(["'](\w+)["']\)""", source):
        return marked.group(1)  # the module's own `pytestmark`
    for fixture, group in SHARED_BY_FIXTURE.items():
        if re.search(rf"\b{fixture}\b", source):
            return group
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (pyproject.toml's addopts): one process more than there are cores. The
    suite waits about half its time (servers starting, subprocesses, audio played in real
    time), so a third process on 2 cores fills the gaps: the whole suite took 554 s with 2
    processes and 494 s with 3, all passing in both (`--maxprocesses` still caps it)."""
    return (os.cpu_count() or 1) + 1


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With `-n` (pyproject.toml's addopts), tests are dealt out one by one to whichever
    process is free, except that each group of `shared_group` goes whole to one process.
    (xdist's own `--dist loadgroup` cannot do this on pytest 9: it renames node ids through
    an attribute pytest no longer reads.)"""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedServerScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return shared_group(nodeid.split("::", 1)[0]) or nodeid

    return SharedServerScheduling(config, log)


def pytest_sessionfinish(session: pytest.Session) -> None:
    # CPython 3.11.7 (gh-106905): a garbage-collected session object whose finalizer logs
    # while pytest's assertion rewriter runs `ast.parse` fails the whole run with
    # "AST constructor recursion depth mismatch". Collect before the summary imports more.
    gc.collect()
