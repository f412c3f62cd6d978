"""A voice stack in a real LiveKit room: the LiveKit server, the speech and LLM backends,
and `voice-agent start` as a subprocess, as a supervisor runs it.

`Stack` is what tests and the bench share: its parts are started by the caller (each
is a context manager or has `start`/`stop`), and `participant()` joins a room on its
LiveKit server with its key. `VoiceWorker` is one worker process: its log goes to a
file (read it with `log()`), its readiness is `GET /ready` on its own port.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testing.cli import ROOT, chat_env, spawn_cli
from testing.participant import Participant
from testing.polling import free_port
from testing.servers.livekit_real import LiveKitServer
from testing.servers.openai_server import ScriptedLLMServer
from testing.servers.tts_server import EspeakTTSServer
from testing.servers.whisper_server import WhisperServer

GREETING = "Hello, ask me anything."


@dataclass(frozen=True, slots=True)
class Backends:
    llm: ScriptedLLMServer
    stt: WhisperServer
    tts: EspeakTTSServer


class VoiceWorker:
    """`voice-agent start` against `livekit`, with `backends`; `env` adds or overrides
    variables (e.g. LIVEKIT_AGENT_NAME)."""

    def __init__(
        self, livekit: LiveKitServer, backends: Backends, *, env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.env = chat_env(
            backends.llm,
            LIVEKIT_URL=livekit.url,
            LIVEKIT_API_KEY=livekit.api_key,
            LIVEKIT_API_SECRET=livekit.api_secret,
            # the Whisper server: these tests are about the room, and the answers they check
            # hinge on a word (Tokyo) that Moonshine mishears in espeak-ng's voice
            STT_PROVIDER="speaches",
            STT_BASE_URL=backends.stt.base_url,
            STT_MODEL="tiny.en",
            TTS_BASE_URL=backends.tts.base_url,
            WORKER_HOST="127.0.0.1",
            WORKER_PORT=str(self.port),
            AGENT_GREETING=GREETING,
            **(env or {}),
        )
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115  (closed in stop())
            prefix="voice-agent-worker-", suffix=".log", delete=False
        )
        self.log_path = Path(self._log.name)
        self.proc: subprocess.Popen[str] | None = None

    def start(self, *, timeout: float = 120) -> VoiceWorker:
        self.proc = spawn_cli(
            ["start"],
            env=self.env,
            cwd=ROOT,
            stdout=self._log.fileno(),
            stderr=subprocess.STDOUT,
            new_session=True,  # its job processes are signalled with it
        )
        deadline = time.monotonic() + timeout
        while self.ready_status() != 200:
            if self.proc.poll() is not None:
                raise RuntimeError(f"voice-agent start exited {self.proc.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker was not ready in {timeout:g} s: {self.log()}")
            time.sleep(0.2)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ready_status(self) -> int | None:
        """`GET /ready`'s status (None: nothing answers)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ready", timeout=2) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)
        except OSError:
            return None

    def report(self) -> dict[str, Any]:
        """`GET /worker`: its connection, active sessions, draining."""
        url = f"http://127.0.0.1:{self.port}/worker"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return dict(json.load(resp))

    def terminate(self) -> None:
        """SIGTERM to the worker's own process, as `docker stop` (through compose's init)
        and Kubernetes send it: the worker drains its sessions first. (Not to its whole
        process group: livekit's forkserver does not survive that, and the worker then
        takes every job process for dead; docs/notes-livekit-room.md.)"""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def log(self, tail: int | None = 4000) -> str:
        text = self.log_path.read_text(errors="replace")
        return text if tail is None else text[-tail:]

    def stop(self) -> None:
        """Ends the worker and its job processes at once (a graceful stop is what
        `terminate()` is for: livekit's takes 10 s or more to close idle processes)."""
        if self.proc is not None:
            # the group: job processes left behind by a worker that already exited too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._log.close()

    def close(self) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)


@dataclass
class Stack:
    livekit: LiveKitServer
    backends: Backends
    worker: VoiceWorker | None = None
    agent_name: str = ""
    """The worker's LIVEKIT_AGENT_NAME: participants' tokens dispatch it unless told not to."""

    def participant(
        self, room: str, *, identity: str = "caller", agent_name: str | None = None
    ) -> Participant:
        """A participant for `room` (its token dispatches `agent_name`, by default the
        worker's; "" for a token without dispatch)."""
        return Participant(
            url=self.livekit.url,
            api_key=self.livekit.api_key,
            api_secret=self.livekit.api_secret,
            room=room,
            identity=identity,
            agent_name=self.agent_name if agent_name is None else agent_name,
        )
