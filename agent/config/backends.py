"""The settings' backends, resolved once into typed entries.

`Settings` only describes what the user wrote (`LLM_PROVIDER=groq`, `LLM_FALLBACKS=[...]`);
here each backend, primary then fallbacks, gets its preset's defaults filled in (URL,
model, voice, the vendor's own key variable) and is checked for what it still lacks.
The worker, `chat`, `check` and the secrets inventory all read this one result.
A backend that cannot work raises `ConfigError` naming the variable to set
(`LLM_MODEL: required for LLM_PROVIDER=openai-compatible (...)`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

from agent.config.settings import ConfigError, LLMFallback, Settings, SpeechFallback
from providers import (
    PLACEHOLDER_API_KEY,
    PRESETS,
    STT_PRESETS,
    TTS_PRESETS,
    AnySTTOptions,
    EmbeddedSTTOptions,
    ProviderOptions,
    ProviderPreset,
    SpeechPreset,
    STTOptions,
    TTSOptions,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class LLMBackend:
    setting: str
    """Where it was configured: `LLM` or `LLM_FALLBACKS[1]`."""
    preset: ProviderPreset
    options: ProviderOptions


@dataclass(frozen=True, slots=True, kw_only=True)
class STTBackend:
    setting: str
    """`STT` or `STT_FALLBACKS[1]`."""
    options: AnySTTOptions


@dataclass(frozen=True, slots=True, kw_only=True)
class TTSBackend:
    setting: str
    """`TTS` or `TTS_FALLBACKS[1]`."""
    options: TTSOptions


@dataclass(frozen=True, slots=True, kw_only=True)
class Backends:
    """Every backend, in the order they are tried: the primary first."""

    llm_backends: tuple[LLMBackend, ...]
    stt_backends: tuple[STTBackend, ...]
    tts_backends: tuple[TTSBackend, ...]

    def api_keys(self) -> list[str]:
        """Every real key that will be sent (placeholders left out)."""
        keys = [b.options.api_key for b in self.llm_backends]
        keys += [b.options.api_key for b in self.stt_backends if isinstance(b.options, STTOptions)]
        keys += [b.options.api_key for b in self.tts_backends]
        return [k for k in keys if k and k != PLACEHOLDER_API_KEY]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Entry:
    """One backend as the user wrote it, before defaults."""

    setting: str
    provider: str
    base_url: str | None
    api_key: SecretStr | None
    model: str | None
    voice: str | None = None

    def var(self, field: str) -> str:
        """`LLM` + `model`: `LLM_MODEL`; `LLM_FALLBACKS[1]` + `model`: `LLM_FALLBACKS[1].model`."""
        return (
            f"{self.setting}.{field}" if "[" in self.setting else f"{self.setting}_{field.upper()}"
        )

    @property
    def needed_by(self) -> str:
        if "[" in self.setting:
            return f"provider {self.provider}"
        return f"{self.setting}_PROVIDER={self.provider}"


@dataclass(frozen=True, slots=True)
class _Resolved:
    base_url: str
    model: str
    api_key: str


def resolve_backends(settings: Settings) -> Backends:
    """Every configured backend with its defaults, or `ConfigError` on the first gap."""
    env = settings.environ()
    llm_entries = _chain(settings, "LLM", settings.llm_fallbacks)
    stt_entries = _chain(settings, "STT", settings.stt_fallbacks)
    tts_entries = _chain(settings, "TTS", settings.tts_fallbacks)
    chained = len(llm_entries) > 1
    return Backends(
        llm_backends=tuple(_llm(e, settings, env, chained=chained) for e in llm_entries),
        stt_backends=tuple(_stt(e, settings, env) for e in stt_entries),
        tts_backends=tuple(_tts(e, env) for e in tts_entries),
    )


def _chain(
    settings: Settings,
    kind: Literal["LLM", "STT", "TTS"],
    fallbacks: Sequence[LLMFallback | SpeechFallback],
) -> list[_Entry]:
    """The primary (`LLM_PROVIDER`, `LLM_BASE_URL`, ...), then `LLM_FALLBACKS`' entries."""
    # the primary's fields are named after its variables: `LLM_MODEL` is `llm_model`
    prefix = kind.lower()
    primary = _Entry(
        setting=kind,
        provider=getattr(settings, f"{prefix}_provider"),
        base_url=getattr(settings, f"{prefix}_base_url"),
        api_key=getattr(settings, f"{prefix}_api_key"),
        model=getattr(settings, f"{prefix}_model"),
        voice=getattr(settings, f"{prefix}_voice", None),
    )
    return [primary, *(_fallback(kind, i, f) for i, f in enumerate(fallbacks))]


def _fallback(kind: str, i: int, entry: LLMFallback | SpeechFallback) -> _Entry:
    return _Entry(
        setting=f"{kind}_FALLBACKS[{i}]",
        provider=entry.provider,
        base_url=entry.base_url,
        api_key=entry.api_key,
        model=entry.model,
        voice=entry.voice if isinstance(entry, SpeechFallback) else None,
    )


def _llm(entry: _Entry, settings: Settings, env: Mapping[str, str], *, chained: bool) -> LLMBackend:
    preset = PRESETS[entry.provider]  # a Literal in the schema: always known
    r = _with_defaults(entry, preset, env)
    return LLMBackend(
        setting=entry.setting,
        preset=preset,
        options=ProviderOptions(
            model=r.model,
            base_url=r.base_url,
            api_key=r.api_key,
            timeout=settings.llm_timeout,
            temperature=settings.llm_temperature,
            max_retries=settings.llm_max_retries,
            # a lone backend is always worth another try; in a chain, skip a failing one
            cooldown_seconds=settings.llm_cooldown if chained else 0.0,
            thinking=settings.llm_thinking,
            thought_hold_chars=settings.llm_thought_hold,
        ),
    )


def _stt(entry: _Entry, settings: Settings, env: Mapping[str, str]) -> STTBackend:
    preset = _speech_preset(entry, STT_PRESETS)
    if preset.embedded:
        return STTBackend(setting=entry.setting, options=_embedded_stt(entry, preset, settings))
    r = _with_defaults(entry, preset, env)
    return STTBackend(
        setting=entry.setting,
        options=STTOptions(
            base_url=r.base_url, model=r.model, api_key=r.api_key, language=settings.stt_language
        ),
    )


def _embedded_stt(entry: _Entry, preset: SpeechPreset, settings: Settings) -> EmbeddedSTTOptions:
    """An STT in the worker: nothing to point at, and only the languages its model hears."""
    if entry.base_url is not None:
        raise ConfigError(
            f"{entry.var('base_url')}: not used by {entry.needed_by}, which runs in the worker; "
            f"set {entry.var('provider')}=speaches (or openai-compatible) to use that server"
        )
    model = entry.model or preset.default_model or ""
    if model != preset.default_model:
        raise ConfigError(
            f"{entry.var('model')}: {entry.needed_by} has one model, {preset.default_model}"
        )
    language = settings.stt_language
    if not preset.hears(language):
        raise ConfigError(
            f"STT_LANGUAGE: {language!r} needs a Whisper server: {entry.needed_by} "
            f"hears English only; set {entry.var('provider')}=speaches (or groq, openai)"
        )
    return EmbeddedSTTOptions(engine=preset.name, model=model, language=language)


def _tts(entry: _Entry, env: Mapping[str, str]) -> TTSBackend:
    preset = _speech_preset(entry, TTS_PRESETS)
    r = _with_defaults(entry, preset, env)
    voice = entry.voice or preset.default_voice
    if voice is None:
        raise ConfigError(f"{entry.var('voice')}: required for {entry.needed_by} (a voice)")
    return TTSBackend(
        setting=entry.setting,
        options=TTSOptions(base_url=r.base_url, model=r.model, api_key=r.api_key, voice=voice),
    )


def _speech_preset(entry: _Entry, presets: Mapping[str, SpeechPreset]) -> SpeechPreset:
    preset = presets.get(entry.provider)
    if preset is None:  # the primary's provider is a Literal; fallbacks are checked here
        choices = ", ".join(repr(p) for p in presets)
        raise ConfigError(f"{entry.var('provider')}: expected one of {choices}")
    return preset


def _with_defaults(
    entry: _Entry, preset: ProviderPreset | SpeechPreset, env: Mapping[str, str]
) -> _Resolved:
    """The entry's URL, model and key, its preset's where it has none, or a `ConfigError`
    naming what is missing (`LLM_MODEL`, `STT_FALLBACKS[1].api_key`)."""
    base_url = entry.base_url or preset.default_base_url
    if base_url is None:
        raise ConfigError(
            f"{entry.var('base_url')}: required for {entry.needed_by} "
            "(the server's URL, e.g. http://localhost:8000/v1)"
        )
    model = entry.model or preset.default_model
    if model is None:
        raise ConfigError(
            f"{entry.var('model')}: required for {entry.needed_by} "
            "(the model name the server serves)"
        )
    key = entry.api_key.get_secret_value() if entry.api_key is not None else None
    if key is None and preset.api_key_env:
        key = env.get(preset.api_key_env) or None
    if preset.requires_api_key and key is None:
        alternative = f" or {preset.api_key_env}" if preset.api_key_env else ""
        raise ConfigError(
            f"{entry.var('api_key')}: required for {entry.needed_by} "
            f"(set {entry.var('api_key')}{alternative})"
        )
    return _Resolved(base_url=base_url.rstrip("/"), model=model, api_key=key or PLACEHOLDER_API_KEY)
