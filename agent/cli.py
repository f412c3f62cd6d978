"""The `voice-agent` command.

`start | dev | console | download-files` hand over to livekit-agents' own CLI (their
options, e.g. `start --log-level debug`, pass through untouched); `chat` and `check`
are ours.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .config import ConfigError, Settings
from .logging import configure_logging, redact, register_secrets
from .resolved import Config, load_config

if TYPE_CHECKING:
    from .worker import VoiceAgentServer

# livekit-agents' CLI commands, run with our worker
LIVEKIT_COMMANDS = {
    "start": "run the voice worker (production): connect to LIVEKIT_URL and take sessions",
    "dev": "run the voice worker in development mode (debug logs)",
    "console": "talk to the agent with this machine's microphone and speaker, no LiveKit server",
    "download-files": "fetch the plugins' model files ahead of time (for container builds)",
}


def _load() -> Config:
    try:
        config = load_config()
    except ConfigError as e:
        # one line, nothing else: this is what a user sees after a typo in .env
        print(f"voice-agent: configuration error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    register_secrets(config.secrets())
    configure_logging(level=config.settings.log_level, fmt=config.settings.log_format)
    return config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="voice-agent", description="LiveKit voice-agent runtime (configured from env)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "chat", help="talk to the configured LLM as text: one turn per stdin line, reply on stdout"
    )
    commands.add_parser(
        "check", help="validate the configuration and probe the LLM, STT, TTS and LiveKit"
    )
    for name, help_text in LIVEKIT_COMMANDS.items():
        # livekit parses its own options; ours only routes
        commands.add_parser(name, help=help_text, add_help=False)
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in LIVEKIT_COMMANDS:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")

    if args.command in LIVEKIT_COMMANDS:
        return _run_livekit(args.command, rest)

    if args.command == "check":
        from .check import run_check

        return asyncio.run(run_check(_load()))

    if args.command == "chat":
        from .chat import run_chat

        config = _load()
        try:
            return asyncio.run(run_chat(config))
        except KeyboardInterrupt:
            return 130
    parser.error(f"unknown command {args.command}")
    return 2


def _run_livekit(command: str, rest: list[str]) -> int:
    if command == "download-files":
        return _download_files()

    config = _load()  # first: it makes PROMETHEUS_MULTIPROC_DIR before metrics open files
    from .worker import build_server

    return run_worker(build_server(config.settings), config.settings, command, rest)


def run_worker(server: VoiceAgentServer, settings: Settings, command: str, rest: list[str]) -> int:
    """livekit's CLI runs `server`; its exit status, made to say when the worker failed."""
    from livekit.agents import cli

    # livekit's CLI reads sys.argv; give it the command as if it were its own program
    sys.argv = ["voice-agent", command, *rest]
    code: int | str | None = 0
    try:
        cli.run_app(server)
    except SystemExit as e:
        code = e.code
    if server.failure is not None:
        # livekit logged it and would exit 0; a supervisor must see a failure to restart us
        print(
            redact(f"voice-agent: worker stopped: {server.failure} ({settings.livekit_url})"),
            file=sys.stderr,
        )
        return 1
    return code if isinstance(code, int) else (0 if code is None else 1)


def _download_files() -> int:
    """Fetch every plugin's files (the silero VAD ships in its wheel, so this is quick).

    Needs no configuration: it runs at image build time, before any env exists.
    """
    import logging

    from livekit.agents import Plugin
    from livekit.plugins import openai, silero  # noqa: F401  (registers the plugins)

    configure_logging(level="info", fmt="console")
    log = logging.getLogger("voice-agent")
    for plugin in Plugin.registered_plugins:
        log.info("downloading files for %s", plugin.package)
        plugin.download_files()
    return 0


if __name__ == "__main__":
    sys.exit(main())
