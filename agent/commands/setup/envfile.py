"""Writing `.env`: set the variables the wizard owns, keep every other line as it was.

The file is read with python-dotenv's own parser, so a line is what the app will read:
a quoted value that spans lines is one entry (a `LLM_MODEL=` line inside it is text,
not a setting), and names match as the settings match them, whatever their case.

An existing file is copied to `.env.bak` (then `.env.bak.1`, ...) before it changes;
the copy is created new (never through a link already there), readable by its owner
only when it holds a key. The new file replaces the old in one rename, so an
interrupted write loses nothing; a `.env` that is a symbolic link is written through
to its target, and stays a link.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from dotenv.parser import Binding, parse_stream

_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_./:@+,=-]*")
_LEADING_SPACE = re.compile(r"\s*")
# names whose values are credentials: a file holding one is kept private
_KEY_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
# python-dotenv expands `${NAME}` and `${NAME:-default}` in every kind of quotes and has
# no escape for `$`. `${:-$}` is a reference to the empty name, which no environment
# holds, with "$" as its default: it always reads back as a literal "$".
_LITERAL_DOLLAR = "${:-$}"
WIZARD_HEADER = "# --- written by voice-agent setup ---"


class EnvFileError(Exception):
    """The file cannot be written safely; the message is the line to show."""


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


def _bindings(text: str) -> Iterator[Binding]:
    return parse_stream(io.StringIO(text))


def render(existing: str, values: Mapping[str, str]) -> str:
    """`existing` with each of `values` set where it stood (later duplicates dropped,
    since a later line would win) and the new ones appended."""
    wanted = {name.upper(): name for name in values}
    out: list[str] = []
    done: set[str] = set()
    for binding in _bindings(existing):
        text = binding.original.string
        name = wanted.get(binding.key.upper()) if binding.key is not None else None
        if name is None:
            out.append(text if text.endswith(("\n", "\r")) else text + "\n")
        elif name not in done:
            # blank lines and comments before the entry are part of its text: keep them
            lead = _LEADING_SPACE.match(text)
            out.append(f"{lead.group() if lead else ''}{name}={quote(values[name])}\n")
            done.add(name)
    new = [name for name in values if name not in done]
    if new:
        if out and out[-1].strip():
            out.append("\n")
        if WIZARD_HEADER not in (line.strip() for line in "".join(out).split("\n")):
            out.append(WIZARD_HEADER + "\n")
        out += [f"{name}={quote(values[name])}\n" for name in new]
    return "".join(out)


def holds_key(text: str) -> bool:
    """Whether `text`, read as `.env`, sets a credential (a non-empty `*_API_KEY`, ...)."""
    return any(b.key and b.value and _KEY_NAME.search(b.key) for b in _bindings(text))


def _target(path: Path) -> Path:
    """The file to write: `path`, or where it links to (the link is kept)."""
    if not path.is_symlink():
        return path
    target = Path(os.path.realpath(path))
    if not target.is_file():
        raise EnvFileError(f"{path} links to {target}, which is not a file; nothing written")
    return target


def _write_backup(path: Path, content: bytes, *, mode: int) -> Path:
    """A new `.env.bak` (`.env.bak.1`, ...) beside `path`, created with `mode`: never an
    existing file or link, so a dangling link cannot send the keys elsewhere."""
    n = 0
    while True:
        candidate = path.with_name(f"{path.name}.bak" + (f".{n}" if n else ""))
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        except FileExistsError:
            n += 1
            continue
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # the umask may have taken bits a plain copy keeps
            f.write(content)
        return candidate


def write_env_file(path: Path, values: Mapping[str, str], *, private: bool = False) -> Path | None:
    """Update `path` with `values`; returns where the old file was backed up (None: new file).

    The file is made readable by its owner only when it holds a key (`private`: it will).
    """
    target = _target(path)
    old = target.read_bytes() if target.exists() else None
    try:
        existing = old.decode("utf-8") if old is not None else ""
    except UnicodeDecodeError:
        raise EnvFileError(f"{path} is not UTF-8 text; nothing written") from None
    text = render(existing, values)
    old_mode = target.stat().st_mode & 0o777 if old is not None else 0o644
    backup = None
    if old is not None:
        backup = _write_backup(path, old, mode=0o600 if holds_key(existing) else old_mode)
    mode = 0o600 if private or holds_key(text) else old_mode
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return backup
