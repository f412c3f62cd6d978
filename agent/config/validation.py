"""Validators shared by the settings and the tool files, written once.

Every problem a user can make in their configuration ends as one line that names
where it is (`LLM_TIMEOUT: expected greater than 0`, `tools[1].url: expected an
http(s) URL`): `one_line` turns pydantic's report into that line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from urllib.parse import urlsplit

from pydantic import ValidationError

HTTP_SCHEMES = ("http", "https")


def blank_is_none(value: object) -> object:
    """`VAR=` (as in .env.example) means "not set", not "set to nothing"."""
    return None if isinstance(value, str) and not value.strip() else value


def lowercase(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def url_check(
    schemes: Iterable[str] = HTTP_SCHEMES, *, expected: str = "an http(s) URL"
) -> Callable[[str | None], str | None]:
    """A validator accepting URLs with one of `schemes` and a host (None passes);
    anything else fails with "expected <expected>"."""
    allowed = tuple(schemes)

    def check(value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in allowed or not parts.netloc:
            raise ValueError(f"expected {expected}")
        return value.strip()

    return check


def one_line(
    e: ValidationError,
    *,
    upper_first: bool = False,
    root: str = "file",
    messages: Mapping[str, str] | None = None,
) -> str:
    """`where: what`, from the first error: `LLM_FALLBACKS[0].model: expected a string`.

    `upper_first`: the first part of the location is an env var (upper-cased);
    `messages`: plainer words for some of pydantic's error types."""
    err = e.errors(include_url=False, include_input=False)[0]
    where = ""
    for i, part in enumerate(err["loc"]):
        if isinstance(part, int):
            where += f"[{part}]"
        elif i == 0:
            where = part.upper() if upper_first else str(part)
        else:
            where += f".{part}"
    message = err["msg"].removeprefix("Value error, ")
    kind = err["type"]
    if kind == "model_type" and not where:
        return "expected a mapping at the top level"
    if messages and kind in messages:
        message = messages[kind]
    elif kind == "missing":
        message = "required"
    elif kind == "extra_forbidden":
        message = "unknown key"
    elif message.startswith("Input should be "):
        message = "expected " + message.removeprefix("Input should be ").replace("a valid ", "a ")
    return f"{where or root}: {message}".replace("\n", " ")
