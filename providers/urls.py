"""Base URLs as users paste them, and the credentials a URL may carry."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["normalize_base_url", "split_userinfo"]


def normalize_base_url(url: str) -> str:
    """`http://host:11434/` -> `http://host:11434/v1`; a pasted `/chat/completions` is cut.

    A bare host gets OpenAI's `/v1` prefix, which every server in the list uses; a
    URL with a path is kept as the user wrote it, minus trailing slashes.
    """
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    for endpoint in ("/chat/completions", "/completions"):
        if path.endswith(endpoint):
            path = path[: -len(endpoint)]
    if not path:
        path = "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """`http://user:pw@host/v1` -> (`http://host/v1`, (user, pw)): a URL fit for logs and
    labels, and the credentials it carried (None if it carried none)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return clean, (unquote(user), unquote(password))
