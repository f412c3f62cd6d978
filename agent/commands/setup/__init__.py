"""`voice-agent setup`: the command's options and its entry point."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from agent.commands.setup.console import Console, NoAnswer
from agent.commands.setup.envfile import EnvFileError
from agent.commands.setup.wizard import ROLES, SetupError, SetupOptions, Wizard, scan_line

__all__ = ["SetupOptions", "Wizard", "add_arguments", "run_setup", "scan_line"]


_EXAMPLES = {
    "llm": "ollama:llama3.2, openai-compatible@http://gpu-box:8000 or groq",
    "stt": "speaches:Systran/faster-whisper-small or groq",
    "tts": "kokoro, speaches@http://localhost:8000 or openai",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scan", action="store_true", help="print the servers found, one per line; write nothing"
    )
    parser.add_argument(
        "--url",
        action="append",
        default=[],
        metavar="URL",
        help="also look at this server (repeatable), e.g. http://gpu-box:8000",
    )
    parser.add_argument(
        "--host",
        action="append",
        default=None,
        help="look for the usual ports on this host (repeatable; default localhost)",
    )
    parser.add_argument(
        "--no-port-scan", action="store_true", help="look only at the --url servers"
    )
    for role, example in _EXAMPLES.items():
        parser.add_argument(
            f"--{role}",
            metavar="KIND[:MODEL][@URL]",
            help=f"choose the {role.upper()} without asking, e.g. {example}",
        )
    parser.add_argument("--yes", "-y", action="store_true", help="ask nothing; write the file")
    parser.add_argument("--env-file", type=Path, default=Path(".env"), help="default: ./.env")
    parser.add_argument(
        "--timeout", type=float, default=1.5, help="seconds per discovery request (default 1.5)"
    )


def run_setup(args: argparse.Namespace) -> int:
    options = SetupOptions(
        env_file=args.env_file,
        hosts=tuple(args.host or ("localhost",)),
        urls=tuple(args.url),
        port_scan=not args.no_port_scan,
        request_timeout=args.timeout,
        specs=tuple((role, spec) for role in ROLES if (spec := getattr(args, role))),
        yes=args.yes,
        scan_only=args.scan,
    )
    try:
        return asyncio.run(Wizard(options, Console()).run())
    except (SetupError, EnvFileError) as e:
        print(f"voice-agent setup: {e}", file=sys.stderr)
        return 1
    except NoAnswer:
        print(
            "\nvoice-agent setup: no answer on standard input; nothing written "
            "(scripts: --llm KIND:MODEL ... --yes)",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("\nvoice-agent setup: stopped; nothing written", file=sys.stderr)
        return 130
