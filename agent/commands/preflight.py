"""Checks the `voice-agent` command makes before handing over to livekit's CLI.

Each turns what would be a traceback or a library warning later into one line now:
an audio-less machine for `console`, the development key, `--help` needing no
configuration at all.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

from agent.config.settings import LIVEKIT_DEV_SECRET, Settings
from agent.ops.logging import get_logger

log = get_logger("agent.commands.cli")

HELP_FLAGS = frozenset({"-h", "--help"})


def wants_help(args: Sequence[str]) -> bool:
    return any(a in HELP_FLAGS for a in args)


def note_dev_key(settings: Settings) -> None:
    """One line of ours instead of PyJWT's `InsecureKeyLengthWarning` for the dev key.

    `livekit-server --dev`'s secret is 6 bytes, so PyJWT warns on every token signed with
    it; that is expected locally, and only worth a word about production.
    """
    if settings.livekit_api_secret.get_secret_value() != LIVEKIT_DEV_SECRET:
        return
    from jwt.warnings import InsecureKeyLengthWarning

    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)
    log.info(
        "using LiveKit's development key and secret: fine with `livekit-server --dev`, "
        "never in production (set LIVEKIT_API_KEY and LIVEKIT_API_SECRET)"
    )


def note_loopback_health(settings: Settings) -> None:
    """A word when WORKER_PORT listens on loopback inside a container: its probes and
    scrapes come from outside, and would be refused without a reason anyone can see."""
    if settings.worker_host.strip("[]") in ("127.0.0.1", "localhost", "::1") and (
        settings.in_container()
    ):
        log.warning(
            f"WORKER_HOST={settings.worker_host} in a container: health checks and metrics "
            "from outside it cannot reach WORKER_PORT (set WORKER_HOST=0.0.0.0, as the "
            "image does unless WORKER_HOST is set, empty included)"
        )


def interactive_chat_log_level(settings: Settings) -> str:
    """`chat` with a person at the terminal logs warnings and worse unless LOG_LEVEL says
    otherwise: the per-turn info lines would land in the middle of the replies."""
    explicit = "log_level" in settings.model_fields_set
    if not explicit and sys.stdin.isatty() and sys.stderr.isatty():
        return "warning"
    return settings.log_level


def audio_device_problem() -> str | None:
    """Why `console` cannot use this machine's microphone and speaker, or None."""
    try:
        import sounddevice as sd
    except OSError as e:  # the PortAudio library itself is missing
        return f"no audio devices ({e})"
    try:
        for kind in ("input", "output"):
            sd.query_devices(kind=kind)
    except Exception as e:
        return f"no audio {kind} device ({' '.join(str(e).split())})"
    return None


CONSOLE_WITHOUT_AUDIO = (
    "voice-agent: console: {problem}; `voice-agent chat` talks to the agent as text"
)
