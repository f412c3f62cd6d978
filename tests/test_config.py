"""Start-up configuration: each bad value gives one line naming the variable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.config.resolved import load_config
from agent.config.settings import ConfigError
from providers import STTOptions
from testing.cli import chat_env, run_cli

_OUR_PREFIXES = (
    "LLM_",
    "AGENT_",
    "TOOL",
    "LOG_",
    "MAX_TOOL",
    "BUILTIN",
    "GROQ_",
    "OPENAI_",
    "OPENROUTER_",
)
BASE = {"LLM_BASE_URL": "http://127.0.0.1:9/v1", "LLM_MODEL": "m"}

BAD_VALUES = [
    ({"LLM_PROVIDER": "bogus"}, "LLM_PROVIDER: expected 'openai-compatible', 'ollama'"),
    ({"LLM_BASE_URL": "localhost:8000"}, "LLM_BASE_URL: expected an http(s) URL"),
    ({"LLM_BASE_URL": ""}, "LLM_BASE_URL: required for LLM_PROVIDER=openai-compatible"),
    ({"LLM_MODEL": ""}, "LLM_MODEL: required for LLM_PROVIDER=openai-compatible"),
    ({"LLM_FALLBACKS": "[{"}, "LLM_FALLBACKS: expected a JSON list like"),
    ({"LLM_FALLBACKS": '{"provider": "groq"}'}, "LLM_FALLBACKS: expected a list"),
    ({"LLM_FALLBACKS": '[{"provider": "nope"}]'}, "LLM_FALLBACKS[0].provider: expected 'openai"),
    ({"LLM_FALLBACKS": '[{"base_url": "ftp://x"}]'}, "LLM_FALLBACKS[0].base_url: expected an http"),
    ({"LLM_FALLBACKS": '[{"model": "m"}]'}, "LLM_FALLBACKS[0].base_url: required for provider"),
    ({"LLM_FALLBACKS": '[{"provider": "groq", "key": "x"}]'}, "LLM_FALLBACKS[0].key: unknown key"),
    (
        {"LLM_FALLBACKS": '[{"provider": "ollama"}, {"provider": "openai"}]'},
        "LLM_FALLBACKS[1].api_key: required for provider openai (set LLM_FALLBACKS[1].api_key or",
    ),
    ({"LLM_COOLDOWN": "-5"}, "LLM_COOLDOWN: expected greater than or equal to 0"),
    ({"STT_FALLBACKS": '[{"provider": "kokoro"}]'}, "STT_FALLBACKS[0].provider: expected one of"),
    ({"STT_FALLBACKS": "{"}, "STT_FALLBACKS: expected a JSON list like"),
    # the default STT runs in the worker with an English model: nothing to point it at
    ({"STT_LANGUAGE": "de"}, "STT_LANGUAGE: 'de' needs a Whisper server: STT_PROVIDER=moonshine"),
    (
        {
            "STT_FALLBACKS": '[{"provider": "moonshine"}]',
            "STT_PROVIDER": "groq",
            "GROQ_API_KEY": "k",
            "STT_LANGUAGE": "fr",
        },
        "STT_LANGUAGE: 'fr' needs a Whisper server: provider moonshine hears English only",
    ),
    ({"STT_BASE_URL": "http://x:1/v1"}, "STT_BASE_URL: not used by STT_PROVIDER=moonshine"),
    ({"STT_MODEL": "base-en"}, "STT_MODEL: STT_PROVIDER=moonshine has one model, tiny-en"),
    (
        {"TTS_FALLBACKS": '[{"provider": "openai"}]'},
        "TTS_FALLBACKS[0].api_key: required for provider openai (set TTS_FALLBACKS[0].api_key or",
    ),
    (
        {"TTS_FALLBACKS": '[{"base_url": "http://x:1/v1", "model": "m"}]'},
        "TTS_FALLBACKS[0].voice: required for provider openai-compatible",
    ),
    ({"LLM_TIMEOUT": "soon"}, "LLM_TIMEOUT: expected a number"),
    ({"LLM_TIMEOUT": "0"}, "LLM_TIMEOUT: expected greater than 0"),
    ({"LLM_TEMPERATURE": "7"}, "LLM_TEMPERATURE: expected less than or equal to 2"),
    ({"LLM_MAX_RETRIES": "-1"}, "LLM_MAX_RETRIES: expected greater than or equal to 0"),
    ({"LOG_LEVEL": "loud"}, "LOG_LEVEL: expected 'debug', 'info'"),
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT: expected 'json' or 'console'"),
    ({"TOOL_PASS_MODE": "eager"}, "TOOL_PASS_MODE: expected 'streamed' or 'blocking'"),
    ({"MAX_TOOL_ROUNDS": "0"}, "MAX_TOOL_ROUNDS: expected greater than or equal to 1"),
    ({"TOOL_TIMEOUT": "x"}, "TOOL_TIMEOUT: expected a number"),
    ({"BUILTIN_TOOLS": "perhaps"}, "BUILTIN_TOOLS: expected a boolean"),
    ({"AGENT_INSTRUCTIONS_FILE": "/no/such/file"}, "AGENT_INSTRUCTIONS_FILE: expected the path"),
    (
        {"TURN_DETECTION": "smart"},
        "TURN_DETECTION: expected 'vad', 'model', 'transcript' or 'smart-turn'",
    ),
    (
        {"TURN_DETECTION": "model", "VAD_MIN_SILENCE": "0.1"},
        "VAD_MIN_SILENCE: must be at least 0.25 with TURN_DETECTION=model",
    ),
    ({"TTS_FIRST_CHUNK_WORDS": "-1"}, "TTS_FIRST_CHUNK_WORDS: expected greater than or equal to 0"),
    ({"MAX_SESSIONS": "0"}, "MAX_SESSIONS: expected greater than or equal to 1"),
    ({"LOAD_THRESHOLD": "1.5"}, "LOAD_THRESHOLD: expected less than or equal to 1"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT: expected an"),
    (
        {"PROMETHEUS_MULTIPROC_DIR": "/proc/voice-agent-metrics"},
        "PROMETHEUS_MULTIPROC_DIR: expected a writable directory",
    ),
    (
        {"LLM_PROVIDER": "groq", "LLM_API_KEY": ""},
        "LLM_API_KEY: required for LLM_PROVIDER=groq (set LLM_API_KEY or GROQ_API_KEY)",
    ),
]


@pytest.mark.parametrize(
    ("env", "expected"), BAD_VALUES, ids=[next(iter(e)) for e, _ in BAD_VALUES]
)
def test_bad_value_gives_a_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    _clean(monkeypatch, tmp_path, **{**BASE, **env})
    with pytest.raises(ConfigError) as raised:
        load_config()
    message = str(raised.value)
    assert message.startswith(expected)
    assert "\n" not in message


CLI_CASES = [BAD_VALUES[0], BAD_VALUES[4], BAD_VALUES[-1]]


@pytest.mark.parametrize(("env", "expected"), CLI_CASES, ids=[next(iter(e)) for e, _ in CLI_CASES])
def test_bad_value_fails_start_up_with_one_line_and_exit_code_2(
    env: dict[str, str], expected: str, tmp_path: Path
) -> None:
    result = run_cli(["chat"], env=chat_env(**{**BASE, **env}), stdin="Hello\n", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"voice-agent: configuration error: {expected}")


def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> None:
    for name in list(os.environ):
        if name.startswith(_OUR_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    for k, v in env.items():
        monkeypatch.setenv(k, v)


@pytest.mark.parametrize(
    ("provider", "url", "key_env"),
    [
        ("ollama", "http://localhost:11434/v1", None),
        ("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
        ("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
        ("openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    ],
)
def test_presets_have_their_usual_url_and_read_the_vendor_key_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, provider: str, url: str, key_env: str | None
) -> None:
    _clean(monkeypatch, tmp_path, LLM_PROVIDER=provider)
    if key_env:
        monkeypatch.setenv(key_env, "vendor-key-123")
    options = load_config().backends.llm_backends[0].options
    assert options.base_url == url
    assert options.model  # presets name a default model
    assert options.api_key == ("vendor-key-123" if key_env else "not-needed")


def test_llm_api_key_wins_over_the_vendor_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clean(monkeypatch, tmp_path, LLM_PROVIDER="groq", GROQ_API_KEY="a", LLM_API_KEY="b-key")
    assert load_config().backends.llm_backends[0].options.api_key == "b-key"


def test_api_key_is_not_in_the_settings_repr(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clean(monkeypatch, tmp_path, LLM_PROVIDER="openai", LLM_API_KEY="sk-very-secret-1")
    config = load_config()
    assert "sk-very-secret-1" not in repr(config.settings)
    assert "sk-very-secret-1" not in repr(config.backends)


def test_config_error_is_a_typed_exception(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _clean(monkeypatch, tmp_path, LLM_PROVIDER="openai-compatible")
    with pytest.raises(ConfigError, match=r"^LLM_BASE_URL: required"):
        load_config()


def test_values_are_case_and_space_tolerant(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clean(monkeypatch, tmp_path, LLM_PROVIDER=" Ollama ", LOG_FORMAT="CONSOLE")
    settings = load_config().settings
    assert settings.llm_provider == "ollama"
    assert settings.log_format == "console"


def test_speech_fallbacks_come_after_the_primary_with_vendor_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clean(
        monkeypatch,
        tmp_path,
        **BASE,
        STT_FALLBACKS='[{"provider": "groq"}]',
        TTS_FALLBACKS='[{"provider": "openai", "voice": "ash"}]',
        GROQ_API_KEY="gsk-123",
        OPENAI_API_KEY="sk-456",
    )
    config = load_config()
    stt = [b.options for b in config.backends.stt_backends]
    tts = [b.options for b in config.backends.tts_backends]
    # the default STT runs in the worker; the fallback is a server
    assert [o.location for o in stt] == [
        "in-process (moonshine tiny-en)",
        "https://api.groq.com/openai/v1",
    ]
    assert isinstance(stt[1], STTOptions)
    assert stt[1].api_key == "gsk-123" and stt[1].model == "whisper-large-v3-turbo"
    assert [o.base_url for o in tts] == ["http://localhost:8880/v1", "https://api.openai.com/v1"]
    assert (tts[1].voice, tts[1].api_key) == ("ash", "sk-456")
    assert {"gsk-123", "sk-456"} <= set(config.secrets())


def test_env_example_copied_to_dotenv_loads_as_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clean(monkeypatch, tmp_path)
    example = (Path(__file__).resolve().parents[1] / ".env.example").read_text()
    (tmp_path / ".env").write_text(example)
    monkeypatch.setenv("LLM_PROVIDER", "ollama")  # the environment picks the backend
    config = load_config()
    settings, options = config.settings, config.backends.llm_backends[0].options
    assert (options.base_url, options.model) == ("http://localhost:11434/v1", "llama3.2")
    assert settings.llm_fallbacks == [] and settings.llm_temperature is None


def test_vendor_key_in_dotenv_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _clean(monkeypatch, tmp_path)
    (tmp_path / ".env").write_text(
        'LLM_PROVIDER=groq\nGROQ_API_KEY=gsk-from-dotenv\nLLM_FALLBACKS=[{"provider": "groq"}]\n'
    )
    backends = load_config().backends.llm_backends
    assert [b.options.api_key for b in backends] == ["gsk-from-dotenv", "gsk-from-dotenv"]
