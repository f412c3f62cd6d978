"""A backend chosen in the wizard: the variables it sets, and the probe that tests it.

The probes are `voice-agent check`'s (`providers.probes`), run on options built from the
same presets the runtime resolves, so a choice that passes here passes there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from providers import (
    PLACEHOLDER_API_KEY,
    PRESETS,
    STT_PRESETS,
    TTS_PRESETS,
    OpenAICompatibleProvider,
    ProviderOptions,
    SpeechPreset,
    STTOptions,
    TTSOptions,
)
from providers.discovery import Role, Server
from providers.probes import ProbeResult, probe_llm, probe_stt, probe_tts

CloudName = Literal["groq", "openrouter", "openai"]
CLOUDS: dict[CloudName, str] = {"groq": "Groq", "openrouter": "OpenRouter", "openai": "OpenAI"}
CLOUD_ROLES: dict[Role, tuple[CloudName, ...]] = {
    "llm": ("groq", "openrouter", "openai"),
    "stt": ("groq", "openai"),
    "tts": ("openai",),
}
ROLE_NAMES: dict[Role, str] = {
    "llm": "LLM (the model that answers)",
    "stt": "STT (speech to text)",
    "tts": "TTS (text to speech)",
}


def owned_variables(role: Role) -> tuple[str, ...]:
    """What choosing a backend for `role` rewrites (an unset one is written empty)."""
    prefix = role.upper()
    names = tuple(f"{prefix}_{n}" for n in ("PROVIDER", "BASE_URL", "API_KEY", "MODEL"))
    return (*names, "TTS_VOICE") if role == "tts" else names


@dataclass(frozen=True, slots=True, kw_only=True)
class Choice:
    role: Role
    provider: str
    """A preset name of that role (`ollama`, `openai-compatible`, `speaches`, `groq`, ...)."""
    model: str
    base_url: str | None = None
    """None: the preset's own (a cloud)."""
    api_key: str | None = field(default=None, repr=False)
    key_variable: str | None = None
    """Where the key is written: the vendor's variable (GROQ_API_KEY) for a cloud, else
    `<ROLE>_API_KEY`. None: the key is not written (already in the environment)."""
    keep: tuple[str, ...] = ()
    """Variables of the role left as they are: the one the key in use was read from."""
    voice: str | None = None

    def describe(self) -> str:
        where = self.base_url or self.provider
        return f"{self.provider} {self.model} @ {where}"

    def env(self) -> dict[str, str]:
        # an owned variable not set is written empty, so an old value cannot win; except
        # the one the key was read from, which would then be lost
        values = {name: "" for name in owned_variables(self.role) if name not in self.keep}
        prefix = self.role.upper()
        values[f"{prefix}_PROVIDER"] = self.provider
        values[f"{prefix}_MODEL"] = self.model
        if self.base_url:
            values[f"{prefix}_BASE_URL"] = self.base_url
        if self.voice:
            values["TTS_VOICE"] = self.voice
        if self.api_key and self.key_variable:
            values[self.key_variable] = self.api_key
        return values

    @property
    def writes_key(self) -> bool:
        return bool(self.api_key and self.key_variable)

    async def test(self, *, request_timeout: float) -> ProbeResult:
        key = self.api_key or PLACEHOLDER_API_KEY
        if self.role == "llm":
            preset = PRESETS[self.provider]
            url = self.base_url or preset.default_base_url
            assert url is not None  # a choice without a URL is a cloud's, which has one
            provider = OpenAICompatibleProvider(
                options=ProviderOptions(
                    model=self.model, base_url=url, api_key=key, timeout=request_timeout
                ),
                preset=preset,
            )
            try:
                return await probe_llm(provider, request_timeout=request_timeout)
            finally:
                await provider.aclose()
        speech = _speech_preset(self.role, self.provider)
        url = (self.base_url or speech.default_base_url or "").rstrip("/")
        if self.role == "stt":
            stt = STTOptions(base_url=url, model=self.model, api_key=key)
            return await probe_stt(stt, request_timeout=request_timeout)
        voice = self.voice or speech.default_voice or ""
        tts = TTSOptions(base_url=url, model=self.model, api_key=key, voice=voice)
        return await probe_tts(tts, request_timeout=request_timeout)


def _speech_preset(role: Role, provider: str) -> SpeechPreset:
    return (STT_PRESETS if role == "stt" else TTS_PRESETS)[provider]


def provider_for(server: Server, role: Role) -> str:
    """The preset that talks to `server` in `role`: its own where there is one."""
    own = {
        "llm": {"ollama": "ollama"},
        "stt": {"speaches": "speaches"},
        "tts": {"kokoro": "kokoro", "speaches": "speaches"},
    }[role]
    return own.get(server.kind, "openai-compatible")


def default_model(role: Role, provider: str) -> str | None:
    if role == "llm":
        return PRESETS[provider].default_model
    return _speech_preset(role, provider).default_model


def default_voice(provider: str) -> str | None:
    return TTS_PRESETS[provider].default_voice


def cloud_key_variable(role: Role, cloud: CloudName) -> str:
    preset_env = (
        PRESETS[cloud].api_key_env if role == "llm" else _speech_preset(role, cloud).api_key_env
    )
    return preset_env or f"{role.upper()}_API_KEY"


def from_server(
    server: Server,
    role: Role,
    model: str,
    *,
    voice: str | None = None,
    provider: str | None = None,
) -> Choice:
    """`provider`: the preset to use (default: the one for the server's kind)."""
    provider = provider or provider_for(server, role)
    return Choice(
        role=role,
        provider=provider,
        model=model,
        base_url=server.api_url,
        api_key=server.api_key,
        key_variable=f"{role.upper()}_API_KEY" if server.api_key else None,
        voice=voice or (default_voice(provider) if role == "tts" else None),
    )


def local_presets(role: Role) -> tuple[str, ...]:
    """The presets of `role` that name a kind of server one runs oneself."""
    names = PRESETS if role == "llm" else STT_PRESETS if role == "stt" else TTS_PRESETS
    return tuple(n for n in names if n not in CLOUD_ROLES[role])


def key_source(env: Mapping[str, str], role: Role, cloud: CloudName) -> str:
    """The variable of `env` holding a key for `cloud` already ("": none): the vendor's
    (GROQ_API_KEY), else `<ROLE>_API_KEY` (a key the same cloud was set up with)."""
    names = (cloud_key_variable(role, cloud), f"{role.upper()}_API_KEY")
    return next((name for name in names if env.get(name)), "")


def key_kept(choice: Choice, env: Mapping[str, str]) -> Choice:
    """`choice`, on a server that was sent the `<ROLE>_API_KEY` of `env` (the environment
    over `.env`): that variable is left as it is, neither rewritten nor copied from the
    shell into the file."""
    variable = f"{choice.role.upper()}_API_KEY"
    if not choice.api_key or choice.api_key != env.get(variable):
        return choice
    return replace(choice, key_variable=None, keep=(variable,))
