"""The settings schema: every variable, in groups, with its type, default and description.

Each group is a class whose fields `Settings` (agent/config/settings.py) gathers; the
docstring under a field is the variable's description, and the group's docstring its
heading, on the configuration page generated from this schema (`agent.config.reference`,
docs/configuration.md). A new setting goes into its group here, with a docstring.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
)

from agent.config.validation import blank_is_none, lowercase, url_check
from providers import ProviderName, STTProviderName, TTSProviderName

LIVEKIT_DEV_SECRET = "secret"
"""`livekit-server --dev`'s well-known secret: a default, not a secret worth redacting."""


def default_model_cache_dir(environ: Mapping[str, str]) -> Path:
    """`$XDG_CACHE_HOME/voice-agent`, else `~/.cache/voice-agent`."""
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voice-agent"


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


def _readable_file(path: Path | None) -> Path | None:
    if path is not None and not path.is_file():
        raise ValueError("expected the path of a readable text file")
    return path


def _writable_dir(path: Path | None) -> Path | None:
    # prometheus-client opens its files there as soon as a metric is defined
    if path is not None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"expected a writable directory ({e.strerror})") from None
    return path


def _accepts(words: str) -> Any:
    """What a value may be, in words, where the type alone says too little (a URL is a
    string): the configuration page's "Accepts" column."""
    return Field(json_schema_extra={"accepts": words})


PositiveSeconds = Annotated[float, Field(gt=0, le=3600)]
Lowercase = BeforeValidator(lowercase)
NonBlank = Annotated[str, AfterValidator(_not_blank)]
HttpUrl = Annotated[
    str | None,
    BeforeValidator(blank_is_none),
    AfterValidator(url_check(expected="an http(s) URL such as http://localhost:8000/v1")),
    _accepts("http(s) URL"),
]
LiveKitUrl = Annotated[
    str,
    AfterValidator(
        url_check(
            ("ws", "wss", "http", "https"), expected="a ws(s):// URL such as ws://localhost:7880"
        )
    ),
    _accepts("ws(s) or http(s) URL"),
]
OptionalText = Annotated[str | None, BeforeValidator(blank_is_none)]


def _one_line_secret(value: SecretStr | None) -> SecretStr | None:
    # a pasted key with a line break in it would be cut or refused in an HTTP header
    if value is not None and any(ord(c) < 0x20 or ord(c) == 0x7F for c in value.get_secret_value()):
        raise ValueError("expected one line without control characters (no line breaks)")
    return value


OptionalSecret = Annotated[
    SecretStr | None, BeforeValidator(blank_is_none), AfterValidator(_one_line_secret)
]
OptionalPath = Annotated[Path | None, BeforeValidator(blank_is_none)]
ReadableFile = Annotated[
    OptionalPath, AfterValidator(_readable_file), _accepts("path of a readable text file")
]
WritableDir = Annotated[
    OptionalPath, AfterValidator(_writable_dir), _accepts("directory (made if missing)")
]


class _BackendEntry(BaseModel):
    """The fields every fallback entry shares with its primary backend."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    base_url: HttpUrl = None
    """Server URL (unset: the provider's default)."""
    api_key: OptionalSecret = None
    """Key (unset: the provider's vendor variable, e.g. `GROQ_API_KEY`, or none)."""
    model: OptionalText = None
    """Model name (unset: the provider's default model)."""


class LLMFallback(_BackendEntry):
    """One backend of `LLM_FALLBACKS`: the fields of the primary's `LLM_*` variables."""

    provider: Annotated[ProviderName, Lowercase] = "openai-compatible"
    """The backend, as in `LLM_PROVIDER`."""


class SpeechFallback(_BackendEntry):
    """One backend of `STT_FALLBACKS` or `TTS_FALLBACKS`: the fields of the primary's
    variables (its provider is checked against the STT or TTS providers when resolved)."""

    provider: Annotated[str, Lowercase] = "openai-compatible"
    """The backend, as in `STT_PROVIDER` or `TTS_PROVIDER`."""
    voice: OptionalText = None
    """TTS only: the voice (unset: the provider's default voice)."""


class _Group(BaseModel):
    """A group of settings: its fields' docstrings are their descriptions."""

    model_config = ConfigDict(use_attribute_docstrings=True)


class LLMSettings(_Group):
    """LLM backend."""

    llm_provider: Annotated[ProviderName, Lowercase] = "openai-compatible"
    """`openai-compatible` (vLLM, LiteLLM, LocalAI, TGI, llama.cpp, LM Studio, ...) or a
    preset with its own default URL, model and key variable (see Provider defaults)."""
    llm_base_url: HttpUrl = None
    """Server URL; required for `openai-compatible` (unset: the preset's). A bare host gets
    `/v1` appended. `http://user:password@host/v1` is sent as Basic authentication unless a
    key is set."""
    llm_api_key: OptionalSecret = None
    """Key (unset: the preset's vendor variable, e.g. `GROQ_API_KEY`; servers without
    authentication get the placeholder `not-needed`)."""
    llm_model: OptionalText = None
    """Model name; required for `openai-compatible` (unset: the preset's default model)."""
    llm_timeout: PositiveSeconds = 30.0
    """Seconds before a backend request is given up: connect, first byte, each gap between
    chunks, and the wait for its first word or tool call (keep-alives and reasoning do not
    count)."""
    llm_temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    """Sampling temperature (unset: the server's default)."""
    llm_max_retries: Annotated[int, Field(ge=0, le=10)] = 1
    """Retries of a failed request (429, 5xx, connection errors) while nothing has been said."""
    llm_fallbacks: list[LLMFallback] = Field(default_factory=list)
    """More LLM backends, tried in order when a turn fails before any word was said, e.g.
    `[{"provider": "groq", "model": "llama-3.3-70b-versatile"}]`."""
    llm_cooldown: Annotated[float, Field(ge=0, le=3600)] = 30.0
    """With fallbacks: seconds a backend that failed twice in a row is skipped."""
    llm_thinking: bool = False
    """Let reasoning models think. Off: where the server has a switch (Ollama, Qwen3-style
    templates on vLLM, llama.cpp, SGLang) thinking is turned off, as it delays the first
    word by seconds. Reasoning is never spoken either way."""
    llm_thought_hold: Annotated[int, Field(ge=0, le=2000)] = 32
    """Characters held back at the start of a reply from a model not known to think: a
    bare `</think>` within them makes what came before it a thought, never spoken. Only
    until one reply of the session filled them without a tag: it costs that first reply
    about that many characters of generation in time to first word; 0: none held."""


class AgentSettings(_Group):
    """Agent behaviour."""

    agent_instructions: OptionalText = None
    """The system prompt (unset: a short prompt asking for brief spoken replies without
    markdown, and for a tool call, not a guess, whenever the answer depends on the time,
    live data or an action)."""
    agent_instructions_file: ReadableFile = None
    """A text file holding the system prompt; wins over `AGENT_INSTRUCTIONS`."""
    agent_apology: NonBlank = "Sorry, I'm having trouble answering right now. Please try again."
    """Said when the backend fails; never carries error details. Must not be blank."""
    agent_fallback_reply: NonBlank = "Sorry, I don't have an answer to that."
    """Said when the model, asked twice, produces no words. Must not be blank."""
    tool_pass_mode: Annotated[Literal["streamed", "blocking"], Lowercase] = "streamed"
    """`streamed`: text is spoken while the model generates it; `blocking`: tools are
    resolved with one non-streamed request (for servers whose streamed tool calls break)."""
    max_tool_rounds: Annotated[int, Field(ge=1, le=20)] = 1
    """Tool-resolution passes per turn before the speaking pass must answer in words."""
    tool_timeout: PositiveSeconds = 10.0
    """Seconds a tool may run before the model is told it timed out."""
    builtin_tools: bool = True
    """Offer the built-in `get_current_time` tool."""
    tool_filler: str = "One moment."
    """Said once per turn when tools have not answered within `TOOL_FILLER_DELAY`, or no
    word has come by `AGENT_FIRST_WORD_DEADLINE` (empty: never)."""
    tool_filler_delay: Annotated[float, Field(ge=0, le=60)] = 0.7
    """Seconds tools may run before the filler is said."""
    tool_result_max_chars: Annotated[int, Field(ge=200, le=1_000_000)] = 4000
    """Longest tool result (characters) the model is given; longer ones are cut."""
    tool_response_max_bytes: Annotated[int, Field(ge=1024, le=100_000_000)] = 1_000_000
    """Most bytes read of a tool server's response (webhooks, HTTP MCP servers): a longer
    one is cut there, never read whole."""
    agent_first_word_deadline: Annotated[float, Field(gt=0, le=600)] = 2.5
    """Seconds to the turn's first spoken word before the filler is said (slow backends,
    thinking models)."""
    agent_turn_timeout: Annotated[float, Field(gt=0, le=3600)] = 90.0
    """Seconds a whole turn may take; past it, the turn ends with the apology."""


class ToolFileSettings(_Group):
    """Configured tools.

    Files; `${VAR}` references in them are expanded from the environment and `.env`.
    """

    mcp_config: OptionalPath = None
    """JSON file of MCP servers, `{"mcpServers": {...}}` as other MCP clients use; secrets as
    `${VAR}` (see docs/tools.md)."""
    mcp_connect_timeout: PositiveSeconds = 5.0
    """Seconds to wait for an MCP server at start-up before going on without it (it is
    retried in the background)."""
    webhook_tools: OptionalPath = None
    """YAML or JSON file with a top-level `tools:` list of webhook tools; secrets as `${VAR}`
    (see docs/tools.md)."""


class HistorySettings(_Group):
    """History.

    What of the conversation is sent to the model.
    """

    history_max_turns: Annotated[int, Field(ge=1, le=1000)] = 20
    """User turns kept in the conversation sent to the model (tool calls stay with their
    results)."""
    history_tool_result_max_chars: Annotated[int, Field(ge=0, le=1_000_000)] = 500
    """Tool results of earlier turns are cut to this many characters."""


class SpeechSettings(_Group):
    """Speech backends.

    Servers of the OpenAI audio API (`/audio/transcriptions`, `/audio/speech`).
    """

    stt_provider: Annotated[STTProviderName, Lowercase] = "moonshine"
    """Speech to text: `moonshine` (in the worker: Moonshine tiny-en, English only, no
    server), `speaches` (a local Speaches server), `openai`, `groq`, or `openai-compatible`
    (needs `STT_BASE_URL`)."""
    stt_base_url: HttpUrl = None
    """STT server URL (unset: the provider's default)."""
    stt_api_key: OptionalSecret = None
    """STT key (unset: the provider's vendor variable, or none)."""
    stt_model: OptionalText = None
    """STT model (unset: the provider's default)."""
    stt_language: NonBlank = "en"
    """Language of the user's speech (ISO 639-1)."""
    tts_provider: Annotated[TTSProviderName, Lowercase] = "kokoro"
    """Text to speech: `kokoro` (Kokoro-FastAPI), `speaches`, `openai`, or
    `openai-compatible` (needs `TTS_BASE_URL`)."""
    tts_base_url: HttpUrl = None
    """TTS server URL (unset: the provider's default)."""
    tts_api_key: OptionalSecret = None
    """TTS key (unset: the provider's vendor variable, or none)."""
    tts_model: OptionalText = None
    """TTS model (unset: the provider's default)."""
    tts_voice: OptionalText = None
    """TTS voice (unset: the provider's default)."""
    stt_fallbacks: list[SpeechFallback] = Field(default_factory=list)
    """More STT backends, tried in order, e.g. `[{"provider": "groq"}]`."""
    tts_fallbacks: list[SpeechFallback] = Field(default_factory=list)
    """More TTS backends, tried in order, e.g. `[{"provider": "openai", "voice": "ash"}]`."""


class VoiceSettings(_Group):
    """Voice session."""

    agent_greeting: str = "Hi! How can I help you?"
    """Said when someone joins (empty: stay quiet until spoken to)."""
    agent_stt_error_reply: str = "Sorry, I couldn't hear that. My speech recognition isn't working."
    """Said when speech recognition fails, once per outage (empty: say nothing)."""
    allow_interruptions: bool = True
    """Let the user interrupt the agent by speaking."""
    min_interruption_duration: Annotated[float, Field(ge=0, le=10)] = 0.5
    """Seconds of user speech that count as an interruption."""
    endpointing_min_delay: Annotated[float, Field(ge=0, le=10)] = 0.5
    """Seconds of silence after speech before the user's turn ends."""
    endpointing_max_delay: Annotated[float, Field(gt=0, le=30)] = 3.0
    """Seconds of silence after which the turn ends in any case, also when it looked
    unfinished; at least `ENDPOINTING_MIN_DELAY`."""


class FastTurnSettings(_Group):
    """Fast spoken turns.

    What shortens the wait from the end of the user's speech to the agent's first audio
    (docs/turns.md, "Fast turns").
    """

    turn_detection: Annotated[Literal["vad", "model", "transcript", "smart-turn"], Lowercase] = (
        "transcript"
    )
    """How the end of the user's turn is decided. `transcript`: a transcript that ends on a
    word no sentence ends on ("what is the capital of") is only a pause, and the turn waits up
    to `ENDPOINTING_MAX_DELAY`; `smart-turn`: the same, and also Smart Turn v3.2's audio model
    must hear a finished turn (needs `voice-agent download-files`); `model`: livekit's
    end-of-turn text model (turn-detector-v1-mini, CPU, offline); `vad`: silence alone."""
    vad_min_silence: Annotated[float, Field(ge=0.05, le=5)] | None = None
    """Seconds of silence after which the VAD reports the end of speech (unset: 0.2 with
    `TURN_DETECTION=transcript` or `smart-turn`, 0.25 with `model`, the least it accepts,
    0.55 with `vad`)."""
    stt_on_pause: bool = True
    """Transcribe each stretch of speech as soon as the user pauses, instead of once the turn
    has ended."""
    tts_first_chunk_words: Annotated[int, Field(ge=0, le=50)] = 4
    """The reply's first words go to the TTS at the first comma or after this many words; the
    rest in whole sentences (0: whole sentences only)."""
    preemptive_generation: bool = True
    """Start answering on the transcript before the end of the turn is confirmed; the answer
    is only spoken once it is, and only read-only tools run before then."""
    model_cache_dir: Path = Field(default_factory=lambda: default_model_cache_dir(os.environ))
    """Where `voice-agent download-files` keeps model files (Smart Turn's; unset:
    `$XDG_CACHE_HOME/voice-agent`, else `~/.cache/voice-agent`)."""


class WorkerSettings(_Group):
    """LiveKit worker."""

    livekit_url: LiveKitUrl = "ws://localhost:7880"
    """LiveKit server URL (the default fits `livekit-server --dev`)."""
    livekit_api_key: NonBlank = "devkey"
    """LiveKit API key (the default is `livekit-server --dev`'s)."""
    livekit_api_secret: SecretStr = SecretStr(LIVEKIT_DEV_SECRET)
    """LiveKit API secret (unset: `livekit-server --dev`'s development secret, fit for a
    local server only)."""
    livekit_agent_name: str = ""
    """Set: the worker joins only rooms it is dispatched to by this name (tokens of
    `voice-agent talk` dispatch it); empty: it joins every new room."""
    worker_port: Annotated[int, Field(ge=0, le=65535)] = 8081
    """Port of the worker's HTTP endpoints: `/live`, `/ready`, `/worker` and `/metrics`
    (0: a random port)."""
    worker_host: str = "127.0.0.1"
    """Interface `WORKER_PORT` listens on: this machine only unless set. A container needs
    `0.0.0.0` (every interface), which the image, the compose file and the manifests set."""
    worker_connect_retries: Annotated[int, Field(ge=0, le=1000)] = 16
    """Retries after the first failed connection to LiveKit before the worker exits 1 (2, 4,
    ... up to 10 s apart: the default gives up after about 130 s)."""
    worker_drain_timeout: Annotated[int, Field(ge=0, le=86400)] = 1800
    """Seconds SIGTERM waits for running sessions to end before the worker exits."""
    # load reported to LiveKit = active sessions / MAX_SESSIONS; at LOAD_THRESHOLD LiveKit
    # stops dispatching here. Unset, it is what one 2-core worker held in the capacity
    # benchmark (BENCHMARKS.md) with p95 end of speech -> first audio within +100 ms
    max_sessions: Annotated[int, Field(ge=1, le=10_000)] | None = None
    """Sessions one worker takes: the load it reports to LiveKit is active sessions /
    `MAX_SESSIONS` (unset: what a 2-core worker held in the capacity benchmark, 20 with the
    STT on a server, 8 with it in the worker, as Moonshine is)."""
    load_threshold: Annotated[float, Field(gt=0, le=1)] = 1.0
    """Load at which LiveKit stops dispatching new sessions to this worker."""


def _host_names(value: str) -> str:
    names = [n.strip() for n in value.split(",") if n.strip()]
    if any(not _HOST_NAME.fullmatch(n) for n in names):
        raise ValueError("expected host names separated by commas, e.g. box.lan,10.0.0.5")
    return ",".join(n.lower() for n in names)


_HOST_NAME = re.compile(r"[A-Za-z0-9._-]+|\[?[0-9A-Fa-f:.]+\]?")


def _long_token(value: SecretStr | None) -> SecretStr | None:
    if value is not None and len(value.get_secret_value()) < 16:
        raise ValueError("expected at least 16 characters")
    return value


class TalkSettings(_Group):
    """Talk page.

    `voice-agent talk`: the page to speak to the agent, and its settings view.
    """

    talk_allowed_hosts: Annotated[str, AfterValidator(_host_names)] = ""
    """Host names, comma-separated, the talk page may be loaded by besides localhost and the
    address it listens on (a LAN name, a reverse proxy's)."""
    settings_token: Annotated[OptionalSecret, AfterValidator(_long_token)] = None
    """Access token of the settings view and `/api/settings` (at least 16 characters; unset:
    a random one each time `voice-agent talk` starts, printed in the settings URL)."""


class ObservabilitySettings(_Group):
    """Observability."""

    prometheus_multiproc_dir: WritableDir = None
    """Where job processes leave their metrics for `/metrics` (emptied at start; unset: a
    fresh temporary directory)."""
    otel_exporter_otlp_endpoint: HttpUrl = None
    """OTLP/HTTP endpoint traces are sent to, e.g. `http://otel-collector:4318` (unset: no
    tracing)."""


class LoggingSettings(_Group):
    """Logging."""

    log_level: Annotated[Literal["debug", "info", "warning", "error", "critical"], Lowercase] = (
        "info"
    )
    """Log level of every command and of the worker's sessions (`voice-agent chat` at a
    terminal: `warning` unless set)."""
    log_format: Annotated[Literal["json", "console"], Lowercase] | None = None
    """`json`: one object per line, for log shippers; `console`: human-readable (unset:
    `console` when stderr is a terminal, `json` otherwise)."""
