"""A worker run as `voice-agent start` runs in a directory with a `.env`, for the tests of
the switch without a restart.

The worker is `tests.voice.held_jobs` (livekit's CLI, real job processes) registered with
`FakeLiveKitDispatch`; the directory's `.env` names the backends, the process environment
only what the harness needs. A test offers jobs, types a turn into a held session and
reads which model (and key) its answer was asked of at the scripted LLM server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testing.cli import ROOT, chat_env
from testing.polling import free_port
from testing.servers.livekit_dispatch import FakeLiveKitDispatch
from testing.servers.openai_server import Request, ScriptedLLMServer


def save_env(path: Path, text: str) -> None:
    """Replace `path` in one rename, as every `.env` writer here does."""
    tmp = path.with_name(f".{path.name}.saving")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass
class EnvWorker:
    proc: subprocess.Popen[str]
    port: int
    marks: Path
    dispatch: FakeLiveKitDispatch
    llm: ScriptedLLMServer

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            return str(r.read().decode())

    def configuration(self) -> dict[str, Any]:
        """`/worker`'s `configuration`: the revision new sessions get, and any rejection."""
        return dict(json.loads(self.get("/worker"))["configuration"])

    def take_job(self) -> str:
        job_id = self.dispatch.offer_job()
        answer = self.dispatch.wait_for("answer", lambda: self.dispatch.availability(job_id))
        assert answer.available, f"worker refused {job_id}"
        self.wait_mark(job_id, "started")
        return job_id

    def wait_mark(self, job_id: str, mark: str, within: float = 120) -> None:
        path = self.marks / f"{job_id}.{mark}"
        self.dispatch.wait_for(f"{mark} mark of {job_id}", path.exists, within=within)

    def ask(self, job_id: str, text: str = "What time is it?") -> list[Request]:
        """Type `text` into the held session `job_id`; the LLM requests its answer made."""
        answered = self.marks / f"{job_id}.answered"
        answered.unlink(missing_ok=True)
        before = len(self.llm.requests)
        (self.marks / f"{job_id}.ask").write_text(text)
        self.wait_mark(job_id, "answered", within=90)
        made = self.llm.requests[before:]
        assert made, "the answer made no LLM request"
        return made


@contextmanager
def env_worker(
    directory: Path,
    llm: ScriptedLLMServer,
    dispatch: FakeLiveKitDispatch | None = None,
    **env: str,
) -> Iterator[EnvWorker]:
    """The worker in `directory` (its `.env` already written), registered with `dispatch`
    (started, and stopped after, if not given)."""
    own = dispatch is None
    dispatch = dispatch or FakeLiveKitDispatch().start()
    port = free_port()
    full_env = chat_env(
        None,
        LIVEKIT_URL=dispatch.url,
        WORKER_PORT=str(port),
        WORKER_HOST="127.0.0.1",
        AGENT_GREETING="",
        BUILTIN_TOOLS="false",
        PROMETHEUS_MULTIPROC_DIR=str(directory / "metrics"),
        HELD_JOB_DIR=str(directory),
        HELD_JOB_SECONDS="600",
        **env,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.voice.held_jobs"],
        env={**full_env, "PYTHONPATH": str(ROOT)},
        cwd=directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    worker = EnvWorker(proc=proc, port=port, marks=directory, dispatch=dispatch, llm=llm)
    try:
        dispatch.wait_for("registration", dispatch.registered, within=120)
        yield worker
    finally:
        if proc.poll() is None:
            proc.kill()
        output, _ = proc.communicate(timeout=30)
        (directory / "worker.log").write_text(output)
        if own:
            dispatch.stop()
