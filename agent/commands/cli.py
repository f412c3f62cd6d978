"""The `voice-agent` command.

`start | dev | console | download-files` hand over to livekit-agents' own CLI (their
options, e.g. `start --log-level debug`, pass through untouched); `chat`, `check`,
`setup` and `talk` are ours.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from agent.config.resolved import Config, load_config
from agent.config.settings import ConfigError
from agent.ops.logging import configure_logging, redact, register_secrets

from . import preflight

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from livekit.agents import AgentServer, JobContext

# livekit-agents' CLI commands, run with our worker
LIVEKIT_COMMANDS = {
    "start": "run the voice worker (production): connect to LIVEKIT_URL and take sessions",
    "dev": "run the voice worker in development mode (debug logs)",
    "console": "talk to the agent with this machine's microphone and speaker, no LiveKit server",
}
# the commands that register with LiveKit and serve WORKER_PORT
WORKER_COMMANDS = frozenset({"start", "dev"})


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
    commands.add_parser(
        "download-files",
        help="fetch the plugins' model files ahead of time (for container builds)",
    )
    from agent.commands.setup import add_arguments as add_setup_arguments

    add_setup_arguments(
        commands.add_parser("setup", help="find backends, test them and write .env (--scan: list)")
    )
    from agent.commands.talk import add_arguments as add_talk_arguments

    add_talk_arguments(
        commands.add_parser("talk", help="serve a local page to speak to the agent in a browser")
    )
    for name, help_text in LIVEKIT_COMMANDS.items():
        # livekit parses its own options; ours only routes
        commands.add_parser(name, help=help_text, add_help=False)
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in LIVEKIT_COMMANDS:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")

    if args.command == "download-files":
        return _download_files()
    if args.command in LIVEKIT_COMMANDS:
        return run_livekit(args.command, rest)

    if args.command == "check":
        from agent.commands.check import run_check

        config = _load()
        preflight.note_dev_key(config.settings)
        return asyncio.run(run_check(config))

    if args.command == "setup":
        from agent.commands.setup import run_setup

        return run_setup(args)

    if args.command == "talk":
        from agent.commands.talk import run_talk

        return run_talk(args, _load().settings)

    if args.command == "chat":
        from agent.commands.chat import run_chat

        config = _load()
        settings = config.settings
        configure_logging(
            level=preflight.interactive_chat_log_level(settings), fmt=settings.log_format
        )
        try:
            return asyncio.run(run_chat(config))
        except KeyboardInterrupt:
            return 130
    parser.error(f"unknown command {args.command}")
    return 2


def run_livekit(
    command: str,
    rest: list[str],
    *,
    session_entrypoint: Callable[[JobContext], Awaitable[None]] | None = None,
) -> int:
    """livekit's CLI runs our worker; `session_entrypoint` replaces the session (tests and
    the capacity benchmark run sessions without a LiveKit room)."""
    from livekit.agents import AgentServer, cli

    # livekit's CLI reads sys.argv; give it the command as if it were its own program
    sys.argv = ["voice-agent", command, *rest]
    if preflight.wants_help(rest):
        # help needs no configuration: a bare server is enough for livekit to print it
        return _exit_code(_run_app(cli.run_app, AgentServer()))
    # livekit's console opens the sound devices even in --text mode
    if command == "console" and (problem := preflight.audio_device_problem()):
        print(preflight.CONSOLE_WITHOUT_AUDIO.format(problem=problem), file=sys.stderr)
        return 1

    config = _load()  # first: it makes PROMETHEUS_MULTIPROC_DIR for the metrics
    settings = config.settings
    from agent.worker.entrypoint import build_server
    from agent.worker.health import WorkerPortBusy, bind_worker_port

    health_socket = None
    if command in WORKER_COMMANDS:
        try:
            health_socket = bind_worker_port(settings.worker_host, settings.worker_port)
        except WorkerPortBusy as e:
            print(f"voice-agent: {e}", file=sys.stderr)
            return 1
    preflight.note_dev_key(settings)
    if health_socket is not None:
        preflight.note_loopback_health(settings)
    server = build_server(
        config, health_socket=health_socket, session_entrypoint=session_entrypoint
    )
    code = _run_app(cli.run_app, server)
    if server.failure is not None:
        # livekit logged it and would exit 0; a supervisor must see a failure to restart us
        print(
            redact(f"voice-agent: worker stopped: {server.connection.describe(server.failure)}"),
            file=sys.stderr,
        )
        return 1
    return _exit_code(code)


def _run_app(run_app: Callable[[AgentServer], None], server: AgentServer) -> int | str | None:
    try:
        run_app(server)
    except SystemExit as e:
        return e.code
    return 0


def _exit_code(code: int | str | None) -> int:
    return code if isinstance(code, int) else (0 if code is None else 1)


def _download_files() -> int:
    """Fetch every plugin's files (the silero VAD ships in its wheel, so this is quick) and
    Smart Turn's model (from the pipecat-ai wheel on the package index, into
    MODEL_CACHE_DIR). Moonshine's model ships in its own wheel: nothing to fetch.

    Needs no configuration: it runs at image build time, before any env exists.
    """
    import logging

    from livekit.agents import Plugin
    from livekit.plugins import openai, silero  # noqa: F401  (registers the plugins)

    from agent.config.settings import load_settings
    from providers.smart_turn import SmartTurnUnavailable, fetch_smart_turn

    configure_logging(level="info", fmt="console")
    log = logging.getLogger("voice-agent")
    for plugin in Plugin.registered_plugins:
        log.info("downloading files for %s", plugin.package)
        plugin.download_files()
    try:
        cache_dir = load_settings().model_cache_dir
        log.info("fetching Smart Turn's model into %s", cache_dir)
        log.info("Smart Turn's model is at %s", fetch_smart_turn(cache_dir))
    except (ConfigError, SmartTurnUnavailable, OSError) as e:
        print(f"voice-agent: download-files: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
