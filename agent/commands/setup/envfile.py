"""Writing `.env`: set the variables the wizard owns, keep every other line as it was.

An existing file is copied to `.env.bak` (then `.env.bak.1`, ...) before it changes,
and the new file replaces the old in one rename, so an interrupted write loses nothing.
A file that holds a key is written readable by its owner only.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_./:@+,=-]*")
# python-dotenv expands `${NAME}` and `${NAME:-default}` in every kind of quotes and has
# no escape for `$`. `${:-$}` is a reference to the empty name, which no environment
# holds, with "$" as its default: it always reads back as a literal "$".
_LITERAL_DOLLAR = "${:-$}"
WIZARD_HEADER = "# --- written by voice-agent setup ---"


def quote(value: str) -> str:
    """`value` as python-dotenv (with interpolation, as the app reads `.env`) and so
    pydantic-settings read it back unchanged."""
    value = value.replace("${", _LITERAL_DOLLAR + "{")
    if _PLAIN_VALUE.fullmatch(value):
        return value
    if "\n" not in value and "\r" not in value:
        # python-dotenv reads \\ and \' in single quotes, and nothing else
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    # line breaks only as escapes: reading a file turns a bare \r into \n
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def render(existing: str, values: Mapping[str, str]) -> str:
    """`existing` with each of `values` set where it stood (later duplicates dropped,
    since a later line would win) and the new ones appended."""
    out: list[str] = []
    done: set[str] = set()
    for line in existing.splitlines():
        m = _ASSIGNMENT.match(line)
        name = m.group(1) if m else None
        if name is None or name not in values:
            out.append(line)
        elif name not in done:
            out.append(f"{name}={quote(values[name])}")
            done.add(name)
    new = [name for name in values if name not in done]
    if new:
        if out and out[-1].strip():
            out.append("")
        if WIZARD_HEADER not in out:
            out.append(WIZARD_HEADER)
        out += [f"{name}={quote(values[name])}" for name in new]
    return "\n".join(out) + "\n"


def backup_path(path: Path) -> Path:
    candidate = path.with_name(f"{path.name}.bak")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.bak.{n}")
        n += 1
    return candidate


def write_env_file(path: Path, values: Mapping[str, str], *, private: bool) -> Path | None:
    """Update `path` with `values`; returns where the old file was backed up (None: new file).

    `private`: the values hold a key, so the file is made readable by its owner only.
    """
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    backup = None
    if path.exists():
        backup = backup_path(path)
        shutil.copy2(path, backup)
    mode = 0o600 if private else (path.stat().st_mode & 0o777 if path.exists() else 0o644)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(render(existing, values))
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return backup
