"""Process memory from /proc: RSS, PSS, and the idle `voice-agent start` worker's tree.

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
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 2**20


def rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def pss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def children(pid: int) -> list[int]:
    # per thread: livekit starts its forkserver from a worker thread, not the main one
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
    except OSError:  # gone
        pass
    return found


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


@dataclass(frozen=True, slots=True)
class ProcessMemory:
    role: str
    rss_mb: float
    pss_mb: float


def _role(pid: int, root: int) -> str:
    if pid == root:
        return "main (voice-agent start)"
    cmd = cmdline(pid)
    if "resource_tracker" in cmd:
        return "multiprocessing resource tracker"
    if "forkserver" in cmd:
        # the forkserver itself is the main process's child; job processes are its children
        return "forkserver" if root in _parents(pid) else "idle job process (prewarmed)"
    return cmd[:60]


def _parents(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return [int(f.read().rsplit(")", 1)[1].split()[1])]
    except OSError:
        return []


def tree(root: int) -> list[int]:
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children(pid))
    return out


def tree_memory(root: int) -> list[ProcessMemory]:
    rows = []
    for pid in tree(root):
        try:
            rows.append(ProcessMemory(_role(pid, root), rss_bytes(pid) / MB, pss_bytes(pid) / MB))
        except OSError:  # exited while we looked
            continue
    return rows


def idle_worker(
    env: Mapping[str, str], *, command: list[str], cwd: Path, idle_processes: int, timeout: float
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
        cwd=cwd,
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
