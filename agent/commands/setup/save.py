"""The wizard's last step: show what will be written (keys hidden), write `.env`, and
say whether the agent will start with it."""

from __future__ import annotations

from pathlib import Path

from agent.commands.setup.choices import Choice
from agent.commands.setup.console import Console
from agent.commands.setup.envfile import write_env_file
from agent.config.resolved import load_config
from agent.config.settings import ConfigError


def save_choices(
    choices: list[Choice],
    *,
    livekit_url: str | None,
    env_file: Path,
    console: Console,
    confirm: bool,
) -> None:
    values: dict[str, str] = {}
    for choice in choices:
        values.update(choice.env())
    if livekit_url is not None:
        values["LIVEKIT_URL"] = livekit_url
    else:
        console.say("No LiveKit server found: start one with `livekit-server --dev`.")
    if not values:
        console.say("Nothing to change; nothing written.")
        return
    secret_names = {c.key_variable for c in choices if c.writes_key}
    console.say(f"\nSettings for {env_file}:")
    for name, value in values.items():
        console.say(f"  {name}={'****** (hidden)' if name in secret_names else value}")
    if confirm and not console.confirm(f"Write {env_file}?", default=True):
        console.say("Nothing written.")
        return
    backup = write_env_file(env_file, values, private=bool(secret_names))
    if backup is not None:
        console.say(f"Backed up the previous file to {backup}")
    try:
        # what the agent will make of the file: the same loading, validation included
        load_config(_env_file=env_file)
    except ConfigError as e:
        console.say(f"Wrote {env_file}, but voice-agent will not start yet: {e}")
        return
    console.say(f"Wrote {env_file}. Next: voice-agent check, then voice-agent start")
