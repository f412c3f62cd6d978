"""One livekit-server version for the tests, CI and docker-compose.yml, written once in
`.ci/livekit-server-version`; a binary of another version is refused, not used."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from testing.servers.livekit_real import (
    ROOT,
    LiveKitServerMissing,
    find_binary,
    pinned_version,
)


def test_the_pin_is_a_release_version() -> None:
    assert re.fullmatch(r"v\d+\.\d+\.\d+", pinned_version())


def test_docker_compose_runs_the_pinned_version() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["livekit"]["image"] == f"livekit/livekit-server:{pinned_version()}"


def test_ci_installs_the_pinned_version_with_go_install() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'livekit_version="$(cat .ci/livekit-server-version)"' in ci
    assert 'go install "github.com/livekit/livekit-server/cmd/server@$livekit_version"' in ci
    # before the test run that needs it
    assert ci.index("go install") < ci.index("python -m pytest")


def fake_server(folder: Path, version: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    binary = folder / "server"
    binary.write_text(f"#!/bin/sh\necho 'livekit-server version {version}'\n")
    binary.chmod(0o755)
    return binary


def test_a_server_of_another_version_is_refused_naming_the_pinned_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_server(tmp_path / "go" / "bin", "0.0.1")
    monkeypatch.setenv("GOPATH", str(tmp_path / "go"))
    monkeypatch.delenv("GOBIN", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    with pytest.raises(LiveKitServerMissing) as e:
        find_binary()
    message = str(e.value)
    assert f"livekit-server {pinned_version()} not found" in message
    assert "is 0.0.1" in message and ".ci/run" in message


def test_the_pinned_version_is_found_where_go_install_puts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = fake_server(tmp_path / "go" / "bin", pinned_version().removeprefix("v"))
    monkeypatch.setenv("GOPATH", str(tmp_path / "go"))
    monkeypatch.delenv("GOBIN", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert find_binary() == binary
