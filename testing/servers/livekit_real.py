"""The real LiveKit server (`livekit-server`, built from its Go module) on 127.0.0.1.

Its version is pinned once, in `.ci/livekit-server-version`: `.ci/run` installs that
version (`go install github.com/livekit/livekit-server/cmd/server@VERSION`, which puts a
binary named `server` in Go's bin folder), docker-compose.yml runs the image of the same
tag (tests/room/test_server_version.py checks both), and `LiveKitServer` refuses a
binary of another version.

`LiveKitServer` runs it in `--dev` mode with a config of its own: every port free and on
127.0.0.1 (signalling/API, WebRTC over TCP, WebRTC over one UDP port), loopback ICE
candidates (the only address a test may use), and the API key/secret it is given.
`stop()` and `start()` again keep the ports: a LiveKit outage as a worker sees it.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from testing.polling import free_port

ROOT = Path(__file__).resolve().parents[2]
VERSION_FILE = ROOT / ".ci" / "livekit-server-version"
HOST = "127.0.0.1"


def pinned_version() -> str:
    """The livekit-server version the tests, CI and docker-compose.yml use (`v1.2.3`)."""
    return VERSION_FILE.read_text().strip()


class LiveKitServerMissing(RuntimeError):
    """No livekit-server binary of the pinned version; the message says how to get one."""


def find_binary() -> Path:
    """`livekit-server` on PATH, else the `server` that `go install` put in Go's bin folder;
    LiveKitServerMissing unless it is the pinned version."""
    gopath = os.environ.get("GOPATH") or str(Path.home() / "go")
    gobin = Path(gopath.split(os.pathsep)[0]) / "bin"  # where .ci/run installs it
    candidates = [
        shutil.which("livekit-server"),
        str(Path(os.environ["GOBIN"]) / "server") if os.environ.get("GOBIN") else None,
        str(gobin / "server"),
    ]
    found = list(dict.fromkeys(Path(c) for c in candidates if c and Path(c).is_file()))
    wanted = pinned_version()
    install = (
        f"install it with `.ci/run`, or `GOBIN={gobin} go install "
        f"github.com/livekit/livekit-server/cmd/server@{wanted}`"
    )
    if not found:
        raise LiveKitServerMissing(f"livekit-server {wanted} not found: {install}")
    versions = {path: binary_version(path) for path in found}
    for path, version in versions.items():
        if version == wanted.removeprefix("v"):
            return path
    seen = ", ".join(f"{p} is {v or 'not livekit-server'}" for p, v in versions.items())
    raise LiveKitServerMissing(f"livekit-server {wanted} not found ({seen}): {install}")


def binary_version(path: Path) -> str | None:
    """`1.2.3` from `server --version` (`server version 1.2.3`); None if it is not one."""
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"version (\d+\.\d+\.\d+)", out)
    return match.group(1) if match else None


@dataclass(frozen=True, slots=True)
class Ports:
    http: int
    rtc_tcp: int
    rtc_udp: int


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class LiveKitServer:
    def __init__(self, *, api_key: str = "devkey", api_secret: str = "secret") -> None:
        self.binary = find_binary()
        self.api_key = api_key
        self.api_secret = api_secret
        self.ports = Ports(http=free_port(), rtc_tcp=free_port(), rtc_udp=free_udp_port())
        self._dir = tempfile.TemporaryDirectory(prefix="livekit-server-")
        self.log_path = Path(self._dir.name) / "livekit.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """What LIVEKIT_URL names."""
        return f"ws://{HOST}:{self.ports.http}"

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.ports.http}"

    def _config(self) -> str:
        # JSON is YAML: no quoting to get wrong in the secret
        import json

        return json.dumps(
            {
                "port": self.ports.http,
                "bind_addresses": [HOST],
                "rtc": {
                    "tcp_port": self.ports.rtc_tcp,
                    "udp_port": self.ports.rtc_udp,
                    "node_ip": HOST,
                    "use_external_ip": False,
                    "enable_loopback_candidate": True,
                },
                "keys": {self.api_key: self.api_secret},
                "logging": {"level": "info"},
            }
        )

    def start(self, *, timeout: float = 30) -> LiveKitServer:
        config = Path(self._dir.name) / "livekit.yaml"
        config.write_text(self._config())
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(self.binary), "--dev", "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self._proc.poll() is not None:
                raise RuntimeError(f"livekit-server exited {self._proc.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"livekit-server did not answer in {timeout:g} s: {self.log()}")
            time.sleep(0.1)
        return self

    def answers(self) -> bool:
        """Its HTTP root says OK (what `voice-agent check` and load balancers ask)."""
        try:
            with urllib.request.urlopen(self.http_url, timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        # a second signal skips the graceful shutdown (which waits out every open
        # connection, the workers' included, for seconds)
        for _ in range(2):
            proc.terminate()
            try:
                proc.wait(timeout=1)
                return
            except subprocess.TimeoutExpired:
                pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def log(self, tail: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> LiveKitServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
