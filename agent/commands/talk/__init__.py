"""`voice-agent talk`: a local page to speak to the agent, with its token endpoint."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import socket
import ssl
from pathlib import Path

from aiohttp import web

from agent.commands.talk.server import TalkOptions, build_app, mint_token, url_for_browser
from agent.commands.talk.settings_api import SettingsOptions
from agent.commands.talk.settings_api import install as install_settings
from agent.config.settings import Settings
from agent.ops.logging import register_secrets

__all__ = ["TalkOptions", "add_arguments", "build_app", "mint_token", "run_talk", "url_for_browser"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8090, help="default 8090 (0: any free port)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 for the LAN, then see --certfile)",
    )
    parser.add_argument(
        "--certfile",
        type=Path,
        help="serve HTTPS with this certificate (browsers allow the microphone only on "
        "https:// pages or localhost)",
    )
    parser.add_argument("--keyfile", type=Path, help="the certificate's private key")
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also serve the page to this host name (repeatable; see TALK_ALLOWED_HOSTS)",
    )
    parser.add_argument(
        "--scan-url",
        action="append",
        default=[],
        metavar="URL",
        help="the settings view also looks at this server (repeatable), e.g. http://gpu-box:8000",
    )
    parser.add_argument(
        "--no-port-scan",
        action="store_true",
        help="the settings view looks at the configured servers and --scan-url only, "
        "not at the usual ports of localhost",
    )


def run_talk(args: argparse.Namespace, settings: Settings) -> int:
    opts = TalkOptions(
        livekit_url=settings.livekit_url,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret.get_secret_value(),
        agent_name=settings.livekit_agent_name,
        bind_host=args.host,
        allowed_hosts=(*filter(None, settings.talk_allowed_hosts.split(",")), *args.allow_host),
    )
    context = None
    if args.certfile is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.certfile, args.keyfile)
    app = build_app(opts)
    token = settings.settings_token
    access = token.get_secret_value() if token is not None else secrets.token_urlsafe(24)
    register_secrets([access])
    install_settings(
        app,
        SettingsOptions(
            token=access,
            env_file=Path(".env").absolute(),
            scan_hosts=() if args.no_port_scan else ("localhost",),
            scan_urls=tuple(args.scan_url),
        ),
    )
    with contextlib.suppress(KeyboardInterrupt, web.GracefulExit):
        asyncio.run(_serve(app, args.host, args.port, context, settings.livekit_url, access))
    return 0


async def _serve(
    app: web.Application,
    host: str,
    port: int,
    context: ssl.SSLContext | None,
    livekit_url: str,
    settings_token: str,
) -> None:
    runner = web.AppRunner(app, handle_signals=True)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=context).start()
        scheme = "https" if context else "http"
        shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
        bound = runner.addresses[0][1]
        print(f"voice-agent talk: open {scheme}://{shown}:{bound}/", flush=True)
        print(f"voice-agent talk: LiveKit at {livekit_url}", flush=True)
        # printed once, never logged: whoever holds it can change where speech is sent
        print(
            f"voice-agent talk: settings at {scheme}://{shown}:{bound}/settings"
            f"#token={settings_token}",
            flush=True,
        )
        if context is None and host not in ("127.0.0.1", "::1", "localhost"):
            print(
                f"voice-agent talk: from other machines: http://{socket.gethostname()}:{bound}/"
                " (browsers allow the microphone there only over HTTPS: --certfile/--keyfile)",
                flush=True,
            )
            print(
                f"voice-agent talk: warning: --host {host} without --certfile: the settings "
                "token travels in the clear to other machines (use HTTPS or an SSH tunnel)",
                flush=True,
            )
        await asyncio.Event().wait()  # until Ctrl-C or SIGTERM
    finally:
        await runner.cleanup()
