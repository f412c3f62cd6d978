"""The idle `voice-agent start` worker's memory, process by process: RSS and PSS."""

from __future__ import annotations

import contextlib
import math
import time
from subprocess import DEVNULL

import psutil
from livekit.agents.utils.hw import get_cpu_monitor

from testing.cli import spawn_cli, stop
from testing.polling import free_port

from .common import MB, ROOT, child_env, pss_mb

Row = tuple[str, float, float | None]
"""What a process is, its RSS and its PSS (where measured), in MB."""


def _role(proc: psutil.Process, root: int) -> str:
    if proc.pid == root:
        return "main (voice-agent start)"
    cmd = " ".join(proc.cmdline())
    if "resource_tracker" in cmd:
        return "multiprocessing resource tracker"
    if "forkserver" in cmd:
        # the forkserver itself is the main process's child; job processes are its children
        return "forkserver" if proc.ppid() == root else "idle job process (prewarmed)"
    return cmd[:60]


def _tree(root: int) -> list[Row]:
    rows: list[Row] = []
    main = psutil.Process(root)
    for proc in [main, *sorted(main.children(recursive=True), key=lambda p: p.pid)]:
        with contextlib.suppress(psutil.Error):  # exited while we looked
            rows.append((_role(proc, root), proc.memory_info().rss / MB, pss_mb(proc.pid)))
    return rows


def idle_worker(llm_url: str, *, timeout: float = 90) -> list[Row]:
    """`voice-agent start` against a closed LiveKit port, measured once the forkserver has
    forked its prewarmed job processes (one per CPU, livekit's default for `start`) and
    memory settles; then the whole tree.

    livekit starts its process pool before it first connects to LiveKit, and retries the
    connection with a growing pause: meanwhile the tree is what an idle worker holds, but
    the websocket.
    """
    env = child_env(
        drop=("LLM_", "LIVEKIT_", "WORKER_", "STT_", "TTS_"),
        LLM_BASE_URL=llm_url,
        LLM_MODEL="test-model",
        # nothing listens there: the worker keeps retrying, idle, for minutes
        LIVEKIT_URL=f"ws://127.0.0.1:{free_port()}",
        WORKER_CONNECT_RETRIES="1000",
        WORKER_PORT="0",
        LOG_FORMAT="json",
    )
    idle = math.ceil(get_cpu_monitor().cpu_count())
    # its own process group, so everything it forked is ours to end
    proc = spawn_cli(["start"], env=env, cwd=ROOT, stdout=DEVNULL, stderr=DEVNULL, new_session=True)
    try:
        deadline, stable_since, last = time.monotonic() + timeout, time.monotonic(), 0.0
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited early with status {proc.returncode}")
            tree = _tree(proc.pid)
            ready = sum(role.startswith("idle job") for role, _, _ in tree) >= idle
            total = sum(rss for _, rss, _ in tree)
            if not ready or abs(total - last) > 1.0:
                stable_since = time.monotonic()
            elif time.monotonic() - stable_since >= 2.0:
                pss = sum(pss or 0.0 for _, _, pss in tree)
                # summed RSS counts shared pages once per process; PSS does not
                return [(f"idle worker: {role}", rss, pss) for role, rss, pss in tree] + [
                    ("idle worker: whole process tree", total, pss)
                ]
            last = total
            time.sleep(0.25)
        raise RuntimeError(f"the worker's {idle} idle processes did not settle")
    finally:
        stop(proc, within=20, group=True)
