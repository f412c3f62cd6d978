"""The idle `voice-agent start` worker's memory, process by process: RSS and PSS.

RSS counts every page a process maps, shared or not. livekit's job processes are forked
from its forkserver after the plugins were imported, so most of their pages are shared
copy-on-write: summing RSS over the tree counts those pages once per process. PSS divides
each shared page among the processes sharing it, so the PSS of a tree adds up to what
the tree really costs the machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass

import psutil

from .common import MB, ROOT


def pss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_full_info().pss) / MB


@dataclass(frozen=True, slots=True)
class ProcessMemory:
    role: str
    rss_mb: float
    pss_mb: float


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


def tree_memory(root: int) -> list[ProcessMemory]:
    rows = []
    main = psutil.Process(root)
    for proc in [main, *sorted(main.children(recursive=True), key=lambda p: p.pid)]:
        with contextlib.suppress(psutil.Error):  # exited while we looked
            rss = proc.memory_info().rss / MB
            rows.append(ProcessMemory(_role(proc, root), rss, pss_mb(proc.pid)))
    return rows


def idle_worker(
    env: Mapping[str, str], *, command: list[str], idle_processes: int, timeout: float
) -> list[ProcessMemory]:
    """Start the worker against a closed LiveKit port and measure its tree once the
    forkserver has forked `idle_processes` prewarmed job processes and memory settles.

    livekit starts its process pool (and prewarms the idle job processes) before it first
    connects to LiveKit, and retries the connection with a growing pause: during that
    window the tree is exactly what an idle, registered worker holds, minus one websocket.
    """
    proc = subprocess.Popen(
        command,
        env=dict(env),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, so everything it forked is ours to end
    )
    try:
        deadline = time.monotonic() + timeout
        last: list[ProcessMemory] = []
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited early with status {proc.returncode}")
            now = tree_memory(proc.pid)
            ready = sum(r.role.startswith("idle job") for r in now) >= idle_processes
            total = sum(r.rss_mb for r in now)
            if not ready or abs(total - sum(r.rss_mb for r in last)) > 1.0:
                stable_since = time.monotonic()
            elif time.monotonic() - stable_since >= 2.0:
                return now
            last = now
            time.sleep(0.25)
        raise RuntimeError(f"the worker's {idle_processes} idle processes did not settle")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # drains: nothing is running
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # anything it forked that outlived it (the group is the one we created for it)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
