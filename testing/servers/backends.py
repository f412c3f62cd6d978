"""Scripted servers in the shapes `voice-agent setup` meets: Ollama (its own model list
beside the OpenAI one), a server that wants a key, and a LiveKit server's health root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from .livekit_server import LiveKitPeer
from .openai_server import ScriptedLLMServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class OllamaServer(ScriptedLLMServer):
    """`/api/tags` lists `models`; `/v1/...` answers like the scripted LLM server."""

    def __init__(self, models: tuple[str, ...] = ("llama3.2", "qwen2.5:7b")) -> None:
        super().__init__(model=models[0])
        self.models = models

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_get("/api/tags", self._tags)

    async def _tags(self, request: web.Request) -> web.Response:
        return web.json_response({"models": [{"name": m, "model": m} for m in self.models]})


class KeyedLLMServer(ScriptedLLMServer):
    """Answers 401 to every request without `Authorization: Bearer <api_key>`."""

    def __init__(self, *, api_key: str, model: str = "keyed-model") -> None:
        super().__init__(model=model)
        self.api_key = api_key
        self.refused = 0

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.middlewares.append(self._check_key)

    @web.middleware
    async def _check_key(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            self.refused += 1
            return web.json_response(
                {"error": {"message": "Incorrect API key provided", "type": "auth"}}, status=401
            )
        return await handler(request)


class LiveKitHealthServer(LiveKitPeer):
    """livekit-server's root: 200 `OK`."""

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/", lambda _: web.Response(text="OK"))  # type: ignore[arg-type,return-value]
