"""`LiveConfig`: what a process running sessions makes of `.env` changing under it.

Real files, the real `load_config`; each save replaces the file as `.env` writers do (a
rename), so a change is always a new file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config.live import NO_FILE, LiveConfig, load_file, revision_of
from agent.config.resolved import Config
from agent.config.settings import ConfigError, Settings
from testing.clock import ManualClock

GOOD = "LLM_BASE_URL=http://127.0.0.1:9/v1\nLLM_MODEL=model-a\n"


@pytest.fixture
def env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / ".env"
    save(path, GOOD)
    yield path


def save(path: Path, text: str) -> None:
    tmp = path.with_name(".env.saving")
    tmp.write_text(text)
    os.replace(tmp, path)


def model(config: Config) -> str:
    return config.backends.llm_backends[0].options.model


class CountingLoad:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, path: Path) -> Config:
        self.calls += 1
        return load_file(path)


def test_a_saved_file_that_passes_is_what_the_next_session_gets(env_file: Path) -> None:
    changes: list[str] = []
    live = LiveConfig(env_file=env_file, on_change=lambda _, rev: changes.append(rev))
    running = live.current()  # a session in progress holds this one
    save(env_file, GOOD.replace("model-a", "model-b"))
    started_after = live.current()
    assert model(started_after) == "model-b"
    assert model(running) == "model-a"
    status = live.status()
    assert status.revision == revision_of(env_file) == changes[0]
    assert status.error is None and status.rejected_revision is None


def test_an_unchanged_file_is_not_loaded_again(env_file: Path) -> None:
    load = CountingLoad()
    live = LiveConfig(env_file=env_file, load=load)
    for _ in range(5):
        live.current()
    assert load.calls == 1


def test_a_file_that_fails_keeps_the_last_good_and_says_why_until_it_is_fixed(
    env_file: Path,
) -> None:
    rejections: list[tuple[str, str]] = []
    live = LiveConfig(env_file=env_file, on_reject=lambda e, rev: rejections.append((e, rev)))
    good = live.status().revision
    save(env_file, GOOD + "LLM_TIMEOUT=-1\n")
    bad = revision_of(env_file)
    assert model(live.current()) == "model-a"
    live.current()  # asked again: the same rejection is not reported twice
    status = live.status()
    assert status.error == "LLM_TIMEOUT: expected greater than 0"
    assert (status.revision, status.rejected_revision) == (good, bad)
    assert rejections == [("LLM_TIMEOUT: expected greater than 0", good)]

    save(env_file, GOOD.replace("model-a", "model-c"))
    assert model(live.current()) == "model-c"
    status = live.status()
    assert status.error is None and status.revision == revision_of(env_file)


def test_a_process_started_after_a_bad_save_runs_the_last_good_from_the_snapshot(
    env_file: Path, tmp_path: Path
) -> None:
    snapshot = tmp_path / "private" / "last-good.env"
    snapshot.parent.mkdir(mode=0o700)
    first = LiveConfig(env_file=env_file, snapshot=snapshot)
    save(env_file, GOOD.replace("model-a", "model-b") + "LLM_API_KEY=sk-good-key\n")
    assert model(first.current()) == "model-b"
    good = first.status().revision
    save(env_file, GOOD + "LLM_TIMEOUT=-1\n")
    first.current()

    later = LiveConfig(env_file=env_file, snapshot=snapshot)
    config = later.current()
    assert model(config) == "model-b"
    # the key came from the last good file too
    assert config.backends.llm_backends[0].options.api_key == "sk-good-key"
    status = later.status()
    assert status.revision == good
    assert status.error == "LLM_TIMEOUT: expected greater than 0"
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600
    assert "LLM_TIMEOUT" not in snapshot.read_text()  # only a file that passed is kept


def test_without_a_last_good_configuration_a_bad_file_stops_start_up(env_file: Path) -> None:
    save(env_file, "LLM_TIMEOUT=-1\n")
    with pytest.raises(ConfigError, match="LLM_TIMEOUT"):
        LiveConfig(env_file=env_file, snapshot=env_file.with_name("absent.env"))


def test_status_names_what_needs_a_restart_and_what_the_environment_overrides(
    env_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock(now=1_700_000_000.0)
    live = LiveConfig(env_file=env_file, clock=clock)
    monkeypatch.setenv("LLM_MODEL", "from-the-environment")
    clock.advance(60)
    save(env_file, GOOD + "LIVEKIT_URL=ws://elsewhere:7880\nMAX_SESSIONS=3\n")
    live.current()
    status = live.status()
    assert status.restart_needed == ("LIVEKIT_URL", "MAX_SESSIONS")
    assert status.overridden == ("LLM_MODEL",)
    assert status.loaded_at == "2023-11-14T22:14:20+00:00"


def test_moving_the_stt_into_the_worker_needs_a_restart_for_its_session_count(
    env_file: Path,
) -> None:
    """MAX_SESSIONS unset follows the STT (8 with Moonshine in the worker, 20 with a server);
    the worker reports its load against the count it started with."""
    clock = ManualClock(now=1_700_000_000.0)
    save(env_file, GOOD + "STT_PROVIDER=speaches\n")
    live = LiveConfig(env_file=env_file, clock=clock)
    clock.advance(60)
    save(env_file, GOOD + "STT_PROVIDER=moonshine\n")
    live.current()
    assert live.status().restart_needed == ("MAX_SESSIONS",)


def test_without_a_file_the_revision_says_so(
    env_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file.unlink()
    monkeypatch.setenv("LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("LLM_MODEL", "from-env")
    live = LiveConfig(env_file=env_file)
    assert (live.status().revision, model(live.current())) == (NO_FILE, "from-env")
