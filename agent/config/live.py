"""A configuration that follows `.env` while the process runs: the worker's switch
without a restart.

`LiveConfig.current()` is asked where a session starts. It looks at `.env` (one `stat`),
and only when the file changed since the last look does it load it again, through the
same `load_config` as start-up. A file that passes is what sessions starting from then
on get; sessions already running keep the `Config` they were given. A file that fails
is not used: the last good configuration stays, and the one-line reason is kept for
`/worker` to show.

A revision is named by the file's modification time (UTC, to the microsecond): the
worker's processes and `voice-agent talk`, which look at the same file, name it alike,
and the name says nothing of what the file holds.

A process that starts after a bad save has no last good configuration of its own (a
worker's job processes are forked all along): the last good file is kept as a private
copy, `snapshot`, which such a process loads instead. Only a file that passed is ever
copied there.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from agent.config.resolved import Config, load_config
from agent.config.schema import LoggingSettings, ObservabilitySettings, WorkerSettings
from agent.config.settings import ConfigError, overridden_by_environment

NO_FILE = "no .env"
"""The revision of a configuration read without a `.env` (the environment alone)."""
_SNAPSHOT_HEADER = "# voice-agent: last good configuration, revision "
# read once per process: a change needs a restart (the LiveKit connection, the health
# port, the log and metrics set-up, the trace exporter)
RESTART_FIELDS = (
    *WorkerSettings.model_fields,
    *LoggingSettings.model_fields,
    *ObservabilitySettings.model_fields,
)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What changes whenever the file is written (a save replaces it: a new inode)."""

    inode: int
    mtime_ns: int
    size: int


def fingerprint(path: Path) -> Fingerprint | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return Fingerprint(st.st_ino, st.st_mtime_ns, st.st_size)


def revision_name(print_: Fingerprint | None) -> str:
    if print_ is None:
        return NO_FILE
    when = datetime.fromtimestamp(print_.mtime_ns / 1e9, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def revision_of(path: Path) -> str:
    """`2025-06-01T10:11:12.345678Z`: the revision `path` holds now."""
    return revision_name(fingerprint(path))


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigStatus:
    """Where a process's configuration stands: what `/worker` shows."""

    env_file: str
    revision: str
    """The revision sessions starting now get."""
    loaded_at: str
    """When that revision was loaded (UTC)."""
    error: str | None = None
    """Why the file as it is now is not used (one line); None: it is the one in use."""
    rejected_revision: str | None = None
    restart_needed: tuple[str, ...] = ()
    """Variables changed since start whose new values take a restart to apply."""
    overridden: tuple[str, ...] = field(default=())
    """Variables the file sets that the process environment sets too, and so wins."""


def load_file(path: Path) -> Config:
    """`load_config` reading `path` as its `.env`."""
    return load_config(_env_file=path)


class LiveConfig:
    """The configuration of `env_file` as it is now, or the last good one."""

    def __init__(
        self,
        *,
        env_file: Path,
        snapshot: Path | None = None,
        load: Callable[[Path], Config] = load_file,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[Config, str], None] | None = None,
        on_reject: Callable[[str, str], None] | None = None,
    ) -> None:
        """Loads `env_file` now; if it fails and `snapshot` holds a last good file, that
        one. `ConfigError` when neither gives a configuration.

        `on_change(config, revision)`: a new revision was taken; `on_reject(error,
        revision)`: the file changed and failed (once per change)."""
        self.env_file = env_file
        self._snapshot = snapshot
        self._load = load
        self._clock = clock
        self._on_change = on_change
        self._on_reject = on_reject
        self._error: str | None = None
        self._rejected: str | None = None
        try:
            self._config, self._seen = self._take()
            self._revision = revision_name(self._seen)
        except _Rejected as e:
            if snapshot is None or not snapshot.is_file():
                raise e.error from None
            self._config, self._seen = load(snapshot), e.seen
            self._revision = _snapshot_revision(snapshot)
            self._error, self._rejected = str(e.error), revision_name(e.seen)
        self._baseline = self._config.settings
        self._baseline_sessions = self._config.sessions_per_worker
        self._loaded_at = clock()

    def current(self) -> Config:
        """The configuration a session starting now gets."""
        if fingerprint(self.env_file) == self._seen:
            return self._config
        try:
            config, seen = self._take()
        except _Rejected as e:
            self._seen, self._error, self._rejected = e.seen, str(e.error), revision_name(e.seen)
            if self._on_reject is not None:
                self._on_reject(str(e.error), self._revision)
            return self._config
        self._seen, self._config, self._revision = seen, config, revision_name(seen)
        self._error = self._rejected = None
        self._loaded_at = self._clock()
        if self._on_change is not None:
            self._on_change(config, self._revision)
        return config

    def status(self) -> ConfigStatus:
        """Where it stands as of the last look (`current()`)."""
        now, start = self._config.settings, self._baseline
        changed = tuple(
            name.upper() for name in RESTART_FIELDS if getattr(now, name) != getattr(start, name)
        )
        if "MAX_SESSIONS" not in changed and (
            self._config.sessions_per_worker != self._baseline_sessions
        ):
            changed += ("MAX_SESSIONS",)  # unset, it follows the STT (moved into the worker)
        return ConfigStatus(
            env_file=str(self.env_file),
            revision=self._revision,
            loaded_at=datetime.fromtimestamp(self._loaded_at, UTC).isoformat(),
            error=self._error,
            rejected_revision=self._rejected,
            restart_needed=changed,
            overridden=tuple(overridden_by_environment(self.env_file)),
        )

    def look(self) -> ConfigStatus:
        """`current()`, then `status()`: the state of the file as it is now."""
        self.current()
        return self.status()

    def _take(self) -> tuple[Config, Fingerprint | None]:
        """The file's configuration and the fingerprint of what was read; `_Rejected`
        if it fails. A passing file is copied to the snapshot: the very bytes loaded."""
        seen, text = _read(self.env_file)
        if self._snapshot is None or text is None:
            try:
                return self._load(self.env_file), seen
            except ConfigError as e:
                raise _Rejected(e, seen) from None
        staged = _stage(self._snapshot, revision_name(seen), text)
        try:
            config = self._load(staged)
        except ConfigError as e:
            staged.unlink(missing_ok=True)
            raise _Rejected(e, seen) from None
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        os.replace(staged, self._snapshot)
        return config, seen


class _Rejected(Exception):
    def __init__(self, error: ConfigError, seen: Fingerprint | None) -> None:
        super().__init__(str(error))
        self.error, self.seen = error, seen


def _read(path: Path) -> tuple[Fingerprint | None, bytes | None]:
    """The file's bytes and the fingerprint they go with (read again if it changed
    meanwhile: a save is a rename, so a few tries always see one whole file)."""
    seen = fingerprint(path)
    for _ in range(5):
        if seen is None:
            return None, None
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            text = None
        now = fingerprint(path)
        if now == seen and text is not None:
            return seen, text
        seen = now
    return seen, path.read_bytes() if seen is not None else None


def _stage(snapshot: Path, revision: str, text: bytes) -> Path:
    """A private file beside `snapshot` with `text` under a header naming `revision`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{snapshot.name}.", dir=snapshot.parent)
    with os.fdopen(fd, "wb") as f:  # mkstemp makes it 0600: it holds keys
        f.write(f"{_SNAPSHOT_HEADER}{revision}\n".encode())
        f.write(text)
    return Path(tmp)


def _snapshot_revision(snapshot: Path) -> str:
    with snapshot.open(encoding="utf-8", errors="replace") as f:
        first = f.readline().strip()
    return first.removeprefix(_SNAPSHOT_HEADER) if first.startswith(_SNAPSHOT_HEADER) else "?"
