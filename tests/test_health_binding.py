"""Where WORKER_PORT listens: this machine only unless WORKER_HOST says otherwise (a
container sets 0.0.0.0; one that does not is told so at start)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from testing.cli import ROOT, chat_env, spawn_cli
from testing.network import answers_live, other_address
from testing.polling import free_port

pytestmark = pytest.mark.timeout(150)


@contextmanager
def worker(tmp_path: Path, **env: str) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    port = free_port()
    environ = chat_env(
        None,
        LLM_BASE_URL="http://127.0.0.1:9/v1",
        LLM_MODEL="m",
        LIVEKIT_URL=f"ws://127.0.0.1:{free_port()}",  # nothing there: /live answers anyway
        WORKER_CONNECT_RETRIES="1000",
        WORKER_PORT=str(port),
        TMPDIR=str(tmp_path),
        LOG_FORMAT="console",
        **env,
    )
    for name in ("WORKER_HOST", "KUBERNETES_SERVICE_HOST"):
        if name not in env:
            environ.pop(name, None)
    proc = spawn_cli(["start"], env=environ, cwd=ROOT, stdout=subprocess.DEVNULL,
                     stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not answers_live("127.0.0.1", port):
            assert proc.poll() is None and time.monotonic() < deadline, "the worker never listened"
            time.sleep(0.2)
        yield port, proc
    finally:
        proc.kill()
        proc.communicate(timeout=30)


@pytest.mark.parametrize(
    ("env", "from_outside", "warned"),
    [
        ({}, False, False),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, False, True),
        ({"WORKER_HOST": "0.0.0.0"}, True, False),
    ],
    ids=["unset", "unset-in-a-pod", "every-interface"],
)
def test_the_worker_port_is_this_machines_only_unless_worker_host_says_otherwise(
    tmp_path: Path, env: dict[str, str], from_outside: bool, warned: bool
) -> None:
    address = other_address()
    if address is None:
        pytest.skip("this machine has no address but loopback")
    with worker(tmp_path, **env) as (port, proc):
        assert answers_live(address, port) is from_outside
        proc.kill()
        _, stderr = proc.communicate(timeout=30)
    # these tests may themselves run in a container: then loopback is worth a word too
    here_in_a_container = any(Path(p).exists() for p in ("/.dockerenv", "/run/.containerenv"))
    expected = warned or (here_in_a_container and not from_outside)
    assert ("WORKER_HOST=127.0.0.1 in a container" in stderr) is expected
