"""The pages' files, served from the package's `static/` folder: what the talk page and
the settings page share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web

NO_STORE = {"Cache-Control": "no-store"}
"""For the pages themselves: a browser fetches them again, so a new version is seen at once."""

_CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}


def static_file(name: str) -> bytes:
    return (resources.files(__package__) / "static" / name).read_bytes()


def asset_handler(*names: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A handler for a `{name}` route that serves only these files (read once, here), with
    the content type their suffix says; any other name is a 404."""
    assets = {name: (_CONTENT_TYPES[name[name.rindex(".") :]], static_file(name)) for name in names}

    async def asset(request: web.Request) -> web.Response:
        found = assets.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        content_type, body = found
        return web.Response(body=body, content_type=content_type)

    return asset
