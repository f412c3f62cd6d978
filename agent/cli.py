"""The `voice-agent` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from .config import ConfigError, Settings, load_settings
from .logging import configure_logging, register_secrets


def _load() -> Settings:
    try:
        settings = load_settings()
    except ConfigError as e:
        # one line, nothing else: this is what a user sees after a typo in .env
        print(f"voice-agent: configuration error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    register_secrets(settings.secrets())
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="voice-agent", description="LiveKit voice-agent runtime (configured from env)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "chat", help="talk to the configured LLM as text: one turn per stdin line, reply on stdout"
    )
    args = parser.parse_args(argv)

    if args.command == "chat":
        from .chat import run_chat

        settings = _load()
        try:
            return asyncio.run(run_chat(settings))
        except KeyboardInterrupt:
            return 130
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
