"""The worker's configuration, followed without a restart (`agent.config.live`).

The main process and each job process hold a `LiveConfig` over the `.env` of the
directory the worker started in. A job process looks at the file as each session
starts (`session_config`): a saved change that passes is what that session runs, one
that fails is logged and the last good configuration stays. The main process looks
when `/worker` is asked, which shows the revision and any rejection.

livekit forks job processes all along, also after a bad save: such a process starts
from the last good file, which the processes keep in a private directory the main
process makes before livekit starts its forkserver (`LAST_GOOD_VARIABLE` says where;
the directory is removed when the worker exits).

What a session reads is taken anew (backends, instructions, tools, turn settings, the
VAD's silence window); what the worker reads once (LiveKit connection, health port,
logging, metrics, traces) takes a restart, and `/worker` names such a change.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from agent.config.live import LiveConfig
from agent.config.resolved import Config
from agent.ops.logging import get_logger, register_secrets
from agent.voice.turn_detection import load_vad, prewarm_turn_detection, vad_min_silence

if TYPE_CHECKING:
    from livekit.agents import JobProcess
    from livekit.agents.vad import VAD

log = get_logger("agent.worker")

ENV_FILE = Path(".env")
LAST_GOOD_VARIABLE = "VOICE_AGENT_LAST_GOOD_ENV"


def _taken(config: Config, revision: str) -> None:
    register_secrets(config.secrets())
    log.info("configuration changed: sessions starting now use it", revision=revision)


def _rejected(error: str, kept: str) -> None:
    log.warning(
        f"configuration in {ENV_FILE} not used: {error}; sessions keep revision {kept}",
        revision=kept,
    )


def worker_live_config() -> LiveConfig:
    """The main process's, made before livekit forks anything: it also makes the private
    directory of the last good file, and exports where it is to the job processes."""
    path = os.environ.get(LAST_GOOD_VARIABLE)
    if not path:
        directory = tempfile.mkdtemp(prefix="voice-agent-config-")  # 0700
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        path = os.environ[LAST_GOOD_VARIABLE] = os.path.join(directory, "last-good.env")
    return LiveConfig(
        env_file=ENV_FILE.absolute(),
        snapshot=Path(path),
        on_change=_taken,
        on_reject=_rejected,
    )


def job_live_config() -> LiveConfig:
    """A job process's: `.env` as it is now, or the last good file if it fails."""
    path = os.environ.get(LAST_GOOD_VARIABLE)
    live = LiveConfig(
        env_file=ENV_FILE.absolute(),
        snapshot=Path(path) if path else None,
        on_change=_taken,
        on_reject=_rejected,
    )
    register_secrets(live.current().secrets())
    return live


def report_rejection(live: LiveConfig) -> None:
    """Log, once logging is set up, that the process started on the last good file."""
    status = live.status()
    if status.error is not None:
        _rejected(status.error, status.revision)


def session_config(proc: JobProcess) -> tuple[Config, VAD]:
    """The configuration a session starting now runs, and a VAD that fits it."""
    live: LiveConfig | None = proc.userdata.get("live_config")
    if live is None:  # prewarm skipped (e.g. a thread executor)
        live = proc.userdata["live_config"] = job_live_config()
    config = live.current()
    silence = vad_min_silence(config.settings)
    vad: VAD | None = proc.userdata.get("vad")
    if vad is None or proc.userdata.get("vad_silence") != silence:
        vad = proc.userdata["vad"] = load_vad(config.settings)
        proc.userdata["vad_silence"] = silence
        prewarm_turn_detection(config.settings)
    return config, vad
