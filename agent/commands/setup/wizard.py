"""`voice-agent setup`: find the backends, let the user choose, test each choice, write `.env`.

Three ways in: interactive (questions with defaults), `--scan` (one line per server, writes
nothing) and scripted (`--llm ollama:llama3.2 --yes`). Every choice is tested with
`voice-agent check`'s probes before anything is written; keys are asked for hidden and
never printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx2

from agent.commands.printable import printable
from agent.commands.setup.choices import (
    CLOUD_ROLES,
    CLOUDS,
    ROLE_NAMES,
    Choice,
    CloudName,
    cloud_key_variable,
    default_model,
    default_voice,
    from_server,
    key_kept,
    key_source,
    local_presets,
    provider_for,
)
from agent.commands.setup.console import Console
from agent.commands.setup.save import save_choices
from agent.config.settings import Settings, env_file_values, file_and_environ
from providers.discovery import KIND_ROLES, Role, Server, candidates, discover, inspect, root_url

ROLES: tuple[Role, ...] = ("llm", "stt", "tts")


class SetupError(Exception):
    """A scripted choice that cannot be made; the message is the line to show."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SetupOptions:
    env_file: Path = Path(".env")
    hosts: tuple[str, ...] = ("localhost",)
    urls: tuple[str, ...] = ()
    port_scan: bool = True
    request_timeout: float = 1.5
    """Per discovery request; a scan of ports where nothing listens takes about this long."""
    probe_timeout: float = 15.0
    """Per choice test (an STT model may need to load first)."""
    specs: tuple[tuple[Role, str], ...] = ()
    """Scripted choices: (role, `KIND[:MODEL][@URL]`)."""
    yes: bool = False
    scan_only: bool = False


def scan_line(server: Server) -> str:
    if server.status == "ok":
        shown = ", ".join(server.models[:6]) + (", ..." if len(server.models) > 6 else "")
        state = f"ok  {len(server.models)} models: {shown}" if server.models else "ok"
    elif server.status == "needs-key":
        state = f"needs a key ({server.detail})"
    else:
        state = f"{server.status} ({server.detail})"
    # model ids and details are the server's words: never control characters
    return printable(f"{server.kind:<17} {server.url:<28} {state}")


class Wizard:
    def __init__(self, options: SetupOptions, console: Console) -> None:
        self._opts = options
        self._io = console
        self._env = file_and_environ(options.env_file)
        self._servers: list[Server] = []

    async def run(self) -> int:
        opts = self._opts
        hosts = opts.hosts if opts.port_scan else ()
        self._servers = await discover(
            candidates(hosts, opts.urls), request_timeout=opts.request_timeout
        )
        if opts.scan_only:
            for server in self._servers:
                self._io.say(scan_line(server))
            return 0
        interactive = not opts.yes and not opts.specs
        self._io.say(f"voice-agent setup: looking for backends (writes {opts.env_file})")
        for server in self._servers:
            self._io.say("  " + scan_line(server))
        if interactive:
            await self._ask_for_urls()
        choices: list[Choice] = []
        specs = dict(opts.specs)
        for role in ROLES:
            if role in specs:
                choice: Choice | None = await self._scripted(role, specs[role])
            elif interactive:
                choice = await self._ask(role)
            else:
                choice = None  # scripted: what is not named is kept
            if choice is not None:
                choices.append(choice)
        livekit = next((s for s in self._servers if s.kind == "livekit" and s.status == "ok"), None)
        save_choices(
            choices,
            livekit_url=livekit.url if livekit else None,
            env_file=opts.env_file,
            console=self._io,
            confirm=interactive,
        )
        return 0

    # --- scripted ----------------------------------------------------------------------

    async def _scripted(self, role: Role, spec: str) -> Choice:
        # KIND[:MODEL][@URL]: a model may hold ':' (qwen2.5:7b), a URL always does
        head, _, url = spec.partition("@")
        kind, _, model = head.partition(":")
        kind = kind.strip().lower()
        if kind in CLOUD_ROLES[role]:
            choice = self._cloud(role, kind, model or None)
        else:
            server = await self._server_for(role, kind, url)
            # the kind named wins over the one guessed from the server's answers
            provider = kind if kind in local_presets(role) else provider_for(server, role)
            listed = server.models_for(role)
            model = model or (listed[0] if listed else default_model(role, provider) or "")
            if not model:
                raise SetupError(f"--{role} {spec}: name a model, e.g. {kind}:MODEL")
            choice = key_kept(from_server(server, role, model, provider=provider), self._env)
            if (
                choice.keep
                and env_file_values(self._opts.env_file).get(choice.keep[0]) != choice.api_key
            ):
                self._io.say(
                    f"Using {choice.keep[0]} from the environment; it is not written to "
                    f"{self._opts.env_file} (set it there yourself if the agent needs it)."
                )
        result = await self._test(choice)
        if not result:
            raise SetupError(f"--{role} {spec}: the test failed; nothing written")
        return choice

    async def _server_for(self, role: Role, kind: str, url: str) -> Server:
        if url:
            root = root_url(url)
            key = self._env.get(f"{role.upper()}_API_KEY")
            async with httpx2.AsyncClient(timeout=self._opts.request_timeout) as client:
                server = await inspect(client, "", root, api_key=key)
        else:
            found = [
                s
                for s in self._servers
                if s.usable and (s.kind == kind or provider_for(s, role) == kind)
            ]
            if not found:
                raise SetupError(f"--{role} {kind}: no such server found; add @URL")
            server = found[0]
        if server.status != "ok":
            raise SetupError(f"--{role}: {server.url}: {server.status} ({server.detail})")
        return server

    def _cloud(self, role: Role, cloud: CloudName, model: str | None, key: str = "") -> Choice:
        variable = cloud_key_variable(role, cloud)
        source = key_source(self._env, role, cloud)
        if not key and not source:
            raise SetupError(f"--{role} {cloud}: needs a key: set {variable} (environment or .env)")
        return Choice(
            role=role,
            provider=cloud,
            model=model or default_model(role, cloud) or "",
            api_key=key or self._env[source],
            key_variable=variable if key else None,
            # the key tested is the one already set: it must stay set
            keep=() if key else (source,),
            voice=default_voice(cloud) if role == "tts" else None,
        )

    # --- interactive -------------------------------------------------------------------

    async def _ask_for_urls(self) -> None:
        while url := self._io.ask("Add a server's URL (empty: go on)"):
            async with httpx2.AsyncClient(timeout=self._opts.request_timeout) as client:
                server = await inspect(client, "", root_url(url))
            self._io.say("  " + scan_line(server))
            self._servers.append(server)

    def _offered(self, role: Role) -> list[Server]:
        def offers(s: Server) -> bool:
            if not s.usable:
                return False
            if not s.models:  # unknown yet (it wants a key) or never listed: its kind decides
                return s.kind not in KIND_ROLES or role in KIND_ROLES[s.kind]
            return role in s.roles

        return [s for s in self._servers if offers(s)]

    async def _ask(self, role: Role) -> Choice | None:
        while True:
            servers = self._offered(role)
            clouds = CLOUD_ROLES[role]
            default = Settings.model_fields[f"{role}_provider"].default
            current = self._env.get(f"{role.upper()}_PROVIDER") or f"{default}, the default"
            options = [
                *(_menu_line(s, role) for s in servers),
                *(f"{CLOUDS[c]} (cloud: enter a key)" for c in clouds),
                f"keep the current setting ({current})",
            ]
            self._io.say(f"\n{ROLE_NAMES[role]}:")
            picked = self._io.pick("Choose", options, default=0 if servers else len(options) - 1)
            if picked == len(options) - 1:
                return None
            if picked < len(servers):
                choice = await self._choose_on(servers[picked], role)
            else:
                choice = self._ask_cloud(role, clouds[picked - len(servers)])
            if choice is not None and (
                await self._test(choice) or self._io.confirm("Use it anyway?", default=False)
            ):
                return choice

    async def _choose_on(self, server: Server, role: Role) -> Choice | None:
        if server.status == "needs-key":
            key = self._io.secret(f"API key for {server.url}")
            async with httpx2.AsyncClient(timeout=self._opts.request_timeout) as client:
                unlocked = await inspect(client, server.kind, server.url, api_key=key)
            if unlocked.status != "ok":
                self._io.say(f"  {server.url} refused the key ({unlocked.detail})")
                return None
            self._servers[self._servers.index(server)] = unlocked
            server = unlocked
        provider = provider_for(server, role)
        models = server.models_for(role)
        if len(models) == 1:
            model = models[0]
            self._io.say(f"Model: {printable(model)}")
        elif models:
            self._io.say("Models:")
            current = self._env.get(f"{role.upper()}_MODEL")
            at = models.index(current) if current in models else 0
            model = models[self._io.pick("Model", models, default=at)]
        else:
            model = self._io.ask("Model name", default_model(role, provider) or "")
        voice = None
        if role == "tts":
            voice = self._io.ask("Voice", default_voice(provider) or "") or None
        return from_server(server, role, model, voice=voice)

    def _ask_cloud(self, role: Role, cloud: CloudName) -> Choice | None:
        source = key_source(self._env, role, cloud)
        has_one = bool(source)
        hint = f" (empty: use {source} already set)" if has_one else ""
        key = self._io.secret(f"{CLOUDS[cloud]} API key{hint}")
        if not key and not has_one:
            self._io.say("  no key given")
            return None
        model = self._io.ask("Model", default_model(role, cloud) or "")
        return self._cloud(role, cloud, model, key)

    # --- both --------------------------------------------------------------------------

    async def _test(self, choice: Choice) -> bool:
        self._io.say(f"Testing {choice.role.upper()}: {printable(choice.describe())} ...")
        result = await choice.test(request_timeout=self._opts.probe_timeout)
        self._io.say(f"  {'ok  ' if result.ok else 'FAIL'} {printable(result.detail)}")
        return result.ok


def _menu_line(server: Server, role: Role) -> str:
    models = server.models_for(role)
    what = "needs a key" if server.status == "needs-key" else ", ".join(models[:4]) or "ok"
    return printable(f"{server.kind:<17} {server.url:<28} {what}")
