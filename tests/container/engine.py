"""A real Docker engine for the container tests, and what an offline machine lacks for it.

- `docker_unavailable()` says why no engine can be used (no CLI, no daemon), or None.
- `ensure_base_image()` makes sure the Dockerfile's `FROM` image exists. No registry for
  base images can be reached from CI, so where the image is missing a stand-in is made:
  a Debian bookworm rootfs from `debootstrap` (python3.11, venv, pip), with `python`
  and `pip` under /usr/local as the official `python:3.11-slim` has them, imported under
  the `FROM` tag. The engine keeps it, so only the first run on a machine pays for it.
- `PipIndexRelay` lets `pip` inside `docker build` reach the package indexes the way
  this machine's pip does: its local file indexes (`file://` URLs, find-links folders,
  the constraint file) are served over HTTP on 127.0.0.1 and handed to the build as
  `PIP_*` build args (the build runs with host networking). The Dockerfile itself only
  declares those args, so a normal `docker build` uses PyPI.
"""

from __future__ import annotations

import fcntl
import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

ROOT = Path(__file__).resolve().parents[2]
STANDIN_LABEL = "voice-agent.test.standin"
STANDIN_RECIPE = "2"
"""Bumped when the recipe changes, so that a cached stand-in made by an older one is remade."""
DEBIAN_MIRROR = "http://deb.debian.org/debian"
RELAY_PORT = 38491
"""The same port every run: the build args carry it, and a changed build arg makes
docker rebuild the dependency layer that it would otherwise take from its cache."""
_STANDIN_PACKAGES = "python3,python3-venv,python3-pip,ca-certificates"


class NoBaseImage(Exception):
    """The base image is missing and this machine cannot make a stand-in for it."""


def docker(
    *args: str, timeout: float = 120, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        # the classic builder: it needs no buildx plugin, whichever docker CLI is installed
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"docker {' '.join(args[:3])} failed ({result.returncode}): "
            f"{result.stderr[-3000:] or result.stdout[-3000:]}"
        )
    return result


def docker_unavailable() -> str | None:
    if shutil.which("docker") is None:
        return "no docker CLI (apt-get install docker.io)"
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        return "the docker daemon does not answer"
    if info.returncode != 0 or not info.stdout.strip():
        return f"no docker daemon: {info.stderr.strip()[:200]}"
    return None


def base_image(dockerfile: Path = ROOT / "Dockerfile") -> str:
    match = re.search(r"^FROM\s+(\S+)", dockerfile.read_text(), re.MULTILINE)
    assert match, "Dockerfile has no FROM line"
    return match.group(1)


def image_exists(tag: str) -> bool:
    return docker("image", "inspect", tag, check=False, timeout=30).returncode == 0


def ensure_base_image(tag: str) -> str:
    """`tag` exists in the engine afterwards; returns how: "present" or "stand-in made"."""
    label = docker(
        "image",
        "inspect",
        "--format",
        f'{{{{index .Config.Labels "{STANDIN_LABEL}"}}}}',
        tag,
        check=False,
        timeout=30,
    )
    if label.returncode == 0 and label.stdout.strip() in ("", "<no value>", STANDIN_RECIPE):
        return "present"  # the real image, or a stand-in made by this recipe
    if shutil.which("debootstrap") is None:
        raise NoBaseImage(f"{tag} is missing and debootstrap is not installed to make it")
    with tempfile.TemporaryDirectory(prefix="standin-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={_STANDIN_PACKAGES}",
                "bookworm",
                str(rootfs),
                debian_mirror(),
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )
        _make_like_official_image(rootfs)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [
                "docker",
                "import",
                "--change",
                "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--change",
                "ENV LANG=C.UTF-8",
                "--change",
                f"LABEL {STANDIN_LABEL}={STANDIN_RECIPE}",
                "--change",
                'CMD ["python3"]',
                "-",
                tag,
            ],
            stdin=tar.stdout,
            capture_output=True,
            timeout=600,
        )
        tar.wait(timeout=60)
        if imported.returncode != 0:
            raise RuntimeError(f"docker import failed: {imported.stderr.decode()[-2000:]}")
    return "stand-in made"


def _make_like_official_image(rootfs: Path) -> None:
    """What the official image has that Debian's python3 lacks: `python` and `pip` on
    /usr/local, and a pip that installs system-wide without a venv."""
    local_bin = rootfs / "usr/local/bin"
    local_bin.mkdir(parents=True, exist_ok=True)
    for name, target in (("python", "/usr/bin/python3"), ("python3", "/usr/bin/python3")):
        (local_bin / name).unlink(missing_ok=True)
        (local_bin / name).symlink_to(target)
    (local_bin / "pip").write_text('#!/bin/sh\nexec /usr/bin/python3 -m pip "$@"\n')
    (local_bin / "pip").chmod(0o755)
    for marker in (rootfs / "usr/lib").glob("python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    # this machine's CA bundle: where TLS to the package index is intercepted, its own
    # CA is in there, and Debian's pip reads this file
    shutil.copyfile(ca_bundle(), rootfs / "etc/ssl/certs/ca-certificates.crt")
    shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
    shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)


def ca_bundle() -> Path:
    return Path(pip_settings().get("cert") or "/etc/ssl/certs/ca-certificates.crt")


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (debootstrap needs the same one)."""
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for uri in re.findall(r"(?:URIs:|^deb)\s+(\S+)", text, re.MULTILINE):
            if uri.rstrip("/").endswith("/debian"):
                return uri.rstrip("/")
    return DEBIAN_MIRROR


# --- pip inside the build -------------------------------------------------------------


@functools.cache
def pip_settings() -> dict[str, str]:
    """This machine's pip settings that decide where packages come from."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    settings: dict[str, str] = {}
    for line in out.splitlines():
        match = re.match(r"^[^.]+\.([\w-]+)='(.*)'$", line.strip())
        if match:
            settings[match.group(1)] = match.group(2)
    for key in ("index-url", "extra-index-url", "find-links", "constraint", "trusted-host"):
        env = os.environ.get("PIP_" + key.upper().replace("-", "_"))
        if env:
            settings[key] = env
    return settings


class PipIndexRelay:
    """Serves this machine's local pip sources over HTTP and gives the build args."""

    def __init__(self) -> None:
        self._roots: dict[str, Path] = {}
        self._server: http.server.ThreadingHTTPServer | None = None

    def _serve(self, path: Path) -> str:
        name = f"r{len(self._roots)}"
        self._roots[name] = path
        return name

    def _http(self, location: str) -> str:
        """`location` (a URL or a path) as the build sees it."""
        parts = urlsplit(location)
        if parts.scheme in ("http", "https"):
            return location
        path = Path(unquote(parts.path) if parts.scheme == "file" else location)
        if path.is_file():
            name = self._serve(path.parent)
            return f"{self._base}/{name}/{quote(path.name)}"
        if path.name == "simple":
            # an index's pages link to its files relatively (../../files/x.whl)
            name = self._serve(path.parent)
            return f"{self._base}/{name}/simple/"
        name = self._serve(path)
        return f"{self._base}/{name}/"

    @property
    def _base(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def build_args(self) -> list[str]:
        settings = pip_settings()
        args: dict[str, str] = {}
        for key in ("index-url", "extra-index-url", "find-links", "constraint"):
            if key in settings:
                values = [self._http(v) for v in settings[key].split()]
                args["PIP_" + key.upper().replace("-", "_")] = " ".join(values)
        if "trusted-host" in settings:
            args["PIP_TRUSTED_HOST"] = settings["trusted-host"]
        # docker passes these to every build step without an ARG in the Dockerfile
        for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy"):
            if os.environ.get(proxy):
                args[proxy] = os.environ[proxy]
        return [f"--build-arg={k}={v}" for k, v in args.items()]

    @contextmanager
    def running(self) -> Iterator[PipIndexRelay]:
        roots = self._roots

        class Handler(http.server.SimpleHTTPRequestHandler):
            def translate_path(self, path: str) -> str:
                name, _, rest = urlsplit(path).path.lstrip("/").partition("/")
                root = roots.get(name)
                if root is None:
                    return "/nonexistent"
                target = (root / unquote(rest)).resolve()
                return str(target) if target.is_relative_to(root.resolve()) else "/nonexistent"

            def log_message(self, format: str, *args: object) -> None:
                pass

        try:
            self._server = http.server.ThreadingHTTPServer(("127.0.0.1", RELAY_PORT), Handler)
        except OSError:  # taken: any port works, the dependency layer is just rebuilt
            self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=10)


TEST_IMAGE = "voice-agent:test"
"""The image the container tests build from this checkout and run."""
_IMAGE_LOCK = Path(tempfile.gettempdir()) / "voice-agent-test-image.lock"


def prepare_test_image() -> Iterator[str]:
    """Makes the base image if missing and builds `TEST_IMAGE`, one caller at a time on
    this machine: .ci/run starts it early, in the background (`python -m
    tests.container.engine`), and the tests' fixture waits for it, then finds every layer
    in the engine's cache. Yields once built (the fixture's `NoBaseImage` skip is raised
    from here)."""
    with _IMAGE_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ensure_base_image(base_image())
        build_image(TEST_IMAGE, context=ROOT)
    yield TEST_IMAGE


def build_image(tag: str, *, context: Path, extra: Sequence[str] = ()) -> None:
    with PipIndexRelay().running() as relay:
        docker(
            "build",
            "--network=host",
            "-t",
            tag,
            *relay.build_args(),
            *extra,
            str(context),
            timeout=1500,
        )


if __name__ == "__main__":
    if (reason := docker_unavailable()) is not None:
        sys.exit(f"no image built: {reason}")
    print(f"built {next(prepare_test_image())}")
