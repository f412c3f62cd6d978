"""Speech backends (STT and TTS) as data, and the livekit-plugins-openai objects built from them.

Every server backend here speaks OpenAI's audio API (`/audio/transcriptions`,
`/audio/speech`), so one plugin class serves them all; a preset only says where the server
usually is, which model and voice it ships with, and where its key lives. An embedded
preset (`moonshine`) has no server: it runs in the worker (`providers.moonshine`). Like
the LLM presets, this module never reads the environment: `agent.config.settings` hands
it typed options.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from livekit.agents import stt, tts
from livekit.agents.vad import VAD
from livekit.plugins import openai as lk_openai

from .moonshine import MOONSHINE_LANGUAGES, EmbeddedSTTOptions, MoonshineSTT
from .presets import PLACEHOLDER_API_KEY, by_name

STTProviderName = Literal["moonshine", "speaches", "openai", "groq", "openai-compatible"]
TTSProviderName = Literal["kokoro", "speaches", "openai", "openai-compatible"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechPreset:
    name: str
    default_base_url: str | None
    """None: the user must say where the server is."""
    default_model: str | None
    default_voice: str | None = None
    """TTS only."""
    api_key_env: str | None = None
    """The vendor's conventional variable, read when `STT_API_KEY`/`TTS_API_KEY` is unset."""
    requires_api_key: bool = False
    embedded: bool = False
    """Runs inside the worker: no URL, no key, nothing to start beside it."""
    languages: tuple[str, ...] | None = None
    """The languages it hears (None: whatever the server's model does)."""

    def hears(self, language: str) -> bool:
        """Whether its model hears `language` (`en`, `en-US` and `en_GB` are English)."""
        base = language.strip().lower().replace("_", "-").split("-")[0]
        return self.languages is None or base in self.languages


STT_PRESETS: MappingProxyType[str, SpeechPreset] = by_name(
    # Moonshine tiny (English), inside the worker: the default where it serves
    SpeechPreset(
        name="moonshine",
        default_base_url=None,
        default_model="tiny-en",
        embedded=True,
        languages=MOONSHINE_LANGUAGES,
    ),
    # Speaches (formerly faster-whisper-server): the usual self-hosted Whisper server
    SpeechPreset(
        name="speaches",
        default_base_url="http://localhost:8000/v1",
        default_model="Systran/faster-whisper-small",
    ),
    SpeechPreset(
        name="openai",
        default_base_url="https://api.openai.com/v1",
        default_model="gpt-4o-mini-transcribe",
        api_key_env="OPENAI_API_KEY",
        requires_api_key=True,
    ),
    SpeechPreset(
        name="groq",
        default_base_url="https://api.groq.com/openai/v1",
        default_model="whisper-large-v3-turbo",
        api_key_env="GROQ_API_KEY",
        requires_api_key=True,
    ),
    # LocalAI, whisper.cpp server, vLLM (whisper), a LiteLLM proxy, ...
    SpeechPreset(name="openai-compatible", default_base_url=None, default_model=None),
)

TTS_PRESETS: MappingProxyType[str, SpeechPreset] = by_name(
    # Kokoro-FastAPI: the usual self-hosted TTS server
    SpeechPreset(
        name="kokoro",
        default_base_url="http://localhost:8880/v1",
        default_model="kokoro",
        default_voice="af_heart",
    ),
    # Speaches also serves TTS (Kokoro and Piper models) on its STT port
    SpeechPreset(
        name="speaches",
        default_base_url="http://localhost:8000/v1",
        default_model="speaches-ai/Kokoro-82M-v1.0-ONNX",
        default_voice="af_heart",
    ),
    SpeechPreset(
        name="openai",
        default_base_url="https://api.openai.com/v1",
        default_model="gpt-4o-mini-tts",
        default_voice="ash",
        api_key_env="OPENAI_API_KEY",
        requires_api_key=True,
    ),
    SpeechPreset(name="openai-compatible", default_base_url=None, default_model=None),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class STTOptions:
    base_url: str
    model: str
    api_key: str = PLACEHOLDER_API_KEY
    language: str = "en"

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        return f"STTOptions(base_url={self.base_url!r}, model={self.model!r})"

    @property
    def location(self) -> str:
        return self.base_url


AnySTTOptions = STTOptions | EmbeddedSTTOptions
"""A server's STT or one in the worker."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TTSOptions:
    base_url: str
    model: str
    voice: str
    api_key: str = PLACEHOLDER_API_KEY
    response_format: str = "mp3"
    speed: float = 1.0

    def __repr__(self) -> str:
        return f"TTSOptions(base_url={self.base_url!r}, model={self.model!r}, voice={self.voice!r})"


def build_stt(options: AnySTTOptions) -> stt.STT[Any]:
    """A batch (non-streaming) STT: a server's OpenAI audio API, or Moonshine in this
    process. The session streams it at each pause of the VAD."""
    if isinstance(options, EmbeddedSTTOptions):
        return MoonshineSTT(options=options)
    return lk_openai.STT(
        base_url=options.base_url,
        api_key=options.api_key,
        model=options.model,
        language=options.language,
        # self-hosted Whisper servers only offer the HTTP endpoint, never the realtime socket
        use_realtime=False,
    )


def build_tts(options: TTSOptions) -> tts.TTS[Any]:
    return lk_openai.TTS(
        base_url=options.base_url,
        api_key=options.api_key,
        model=options.model,
        voice=options.voice,
        response_format=options.response_format,
        speed=options.speed,
    )


def build_stt_chain(options: Sequence[AnySTTOptions], *, vad: VAD) -> stt.STT[Any]:
    """One STT, or livekit's `stt.FallbackAdapter` over several, in order. The adapter
    streams our batch STTs through `vad`, and moves on when one fails; livekit does not
    replay audio, so the utterance that was in flight at the failure is lost."""
    engines = [build_stt(o) for o in options]
    if len(engines) == 1:
        return engines[0]
    # with somewhere else to go, a failing backend is not worth a retry: the user waits
    return stt.FallbackAdapter(engines, vad=vad, max_retry_per_stt=0)


def build_tts_chain(options: Sequence[TTSOptions]) -> tts.TTS[Any]:
    """One TTS, or livekit's `tts.FallbackAdapter` over several, in order."""
    engines = [build_tts(o) for o in options]
    return engines[0] if len(engines) == 1 else tts.FallbackAdapter(engines, max_retry_per_tts=0)


def prewarm_stt(options: Sequence[AnySTTOptions]) -> None:
    """Load the models of the STTs that run in this process (a job process calls this once,
    before its first session, so that no one's first words wait for a model to load)."""
    for o in options:
        if isinstance(o, EmbeddedSTTOptions):
            MoonshineSTT(options=o).prewarm()
