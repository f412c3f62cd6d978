"""The `.env` writer of `voice-agent setup`: what it writes reads back unchanged, the lines
it does not own stay as they were, and neither the file nor its backup ever lands where
a link points it, or readable by others while it holds a key."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from dotenv import dotenv_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.commands.setup.envfile import EnvFileError, render, write_env_file
from agent.config.settings import Settings

SECRET = "lk-secret-0f3a9c2e71d4"
KEY = "sk-envfile-8c1d2e3f4a5b"
# the pieces that have broken .env writers: interpolation, quotes, comments and every
# character that some reader takes for a line break
TRICKY = ["$", "${", "}", "${LIVEKIT_API_SECRET}", "${HOME:-x}", "$${A}", "${:-$}", "'", '"',
          "#", " #", "\\", "\\'", "\r", "\n", "\r\n", "\x0c", "\x0b", "\u2028", "\u2029",
          "\x85", "=", " ", "a", "é", ":-", "\x1b]0;x\x07", "\x1b[2J"]  # fmt: skip
values = st.one_of(
    st.lists(st.sampled_from(TRICKY), max_size=12).map("".join),
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")),
)


@contextmanager
def env_file(text: str = "") -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ".env"
        path.write_text(text)
        yield path


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=values)
def test_any_value_reads_back_unchanged_through_dotenv_and_pydantic_settings(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interpolation on, as the app reads `.env`: a `${NAME}` in a value stays text, even
    when NAME is set in the file and in the environment."""
    monkeypatch.setenv("LIVEKIT_API_SECRET", SECRET)
    monkeypatch.delenv("TOOL_FILLER", raising=False)
    with env_file(f"LIVEKIT_API_SECRET={SECRET}\nHOME=/home/x\n") as path:
        path.write_text(render(path.read_text(), {"TOOL_FILLER": value, "LLM_MODEL": value}))
        read = dotenv_values(path)  # interpolate=True: the default, and the app's
        assert read["TOOL_FILLER"] == value
        assert read["LLM_MODEL"] == value
        if value:  # an empty value means "unset" to the settings (env_ignore_empty)
            assert Settings(_env_file=path).tool_filler == value  # type: ignore[call-arg]


def test_a_model_id_holding_an_env_reference_is_not_expanded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIVEKIT_API_SECRET", SECRET)
    model = "llama3.2:${LIVEKIT_API_SECRET}"
    with env_file(f"LIVEKIT_API_SECRET={SECRET}\n") as path:
        path.write_text(render(path.read_text(), {"LLM_MODEL": model}))
        assert Settings(_env_file=path).llm_model == model  # type: ignore[call-arg]
        assert SECRET not in str(dotenv_values(path)["LLM_MODEL"])


@pytest.mark.parametrize("separator", ["\x0c", "\u2028", "\x0b", "\x1e", "\x85"])
def test_a_value_holding_a_character_splitlines_breaks_on_is_kept_whole(separator: str) -> None:
    existing = f"TOOL_FILLER=Hmm{separator}ok\nLLM_MODEL=old\n"
    text = render(existing, {"LLM_MODEL": "new"})
    assert text == f"TOOL_FILLER=Hmm{separator}ok\nLLM_MODEL=new\n"
    with env_file(text) as path:
        assert dotenv_values(path) == {"TOOL_FILLER": f"Hmm{separator}ok", "LLM_MODEL": "new"}


def test_a_setting_written_inside_a_quoted_multiline_value_is_text_not_a_setting() -> None:
    existing = (
        'AGENT_INSTRUCTIONS="You are terse.\nLLM_MODEL=inside-the-prompt\nBe kind."\n'
        "LLM_MODEL=old-model\n"
    )
    text = render(existing, {"LLM_MODEL": "new-model"})
    with env_file(text) as path:
        read = dotenv_values(path)
    assert read["AGENT_INSTRUCTIONS"] == "You are terse.\nLLM_MODEL=inside-the-prompt\nBe kind."
    assert read["LLM_MODEL"] == "new-model"
    assert text.count("LLM_MODEL=new-model") == 1


def test_a_name_in_another_case_is_the_same_setting_and_is_replaced() -> None:
    existing = "llm_model=old-model\nexport Llm_Model=older\nLOG_LEVEL=debug\n"
    text = render(existing, {"LLM_MODEL": "new-model"})
    assert text == "LLM_MODEL=new-model\nLOG_LEVEL=debug\n"
    with env_file(text) as path:
        assert Settings(_env_file=path).llm_model == "new-model"  # type: ignore[call-arg]


def test_a_symlinked_env_is_written_through_to_its_target_and_stays_a_link(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared" / "voice.env"
    shared.parent.mkdir()
    shared.write_text("LOG_LEVEL=debug\nLLM_MODEL=old\n")
    link = tmp_path / "project" / ".env"
    link.parent.mkdir()
    link.symlink_to(shared)
    backup = write_env_file(link, {"LLM_MODEL": "new"})
    assert link.is_symlink() and link.resolve() == shared
    assert shared.read_text() == "LOG_LEVEL=debug\nLLM_MODEL=new\n"
    assert backup == link.with_name(".env.bak")
    assert backup.read_text() == "LOG_LEVEL=debug\nLLM_MODEL=old\n"
    assert not backup.is_symlink()


def test_a_dangling_env_link_is_refused_with_one_line(tmp_path: Path) -> None:
    link = tmp_path / ".env"
    link.symlink_to(tmp_path / "elsewhere" / "voice.env")
    with pytest.raises(EnvFileError) as e:
        write_env_file(link, {"LLM_API_KEY": KEY})
    assert "nothing written" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "elsewhere").exists()


def test_a_dangling_env_bak_link_is_never_followed(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(f"LLM_API_KEY={KEY}\n")
    planted = tmp_path / "outside" / "stolen"
    (tmp_path / "outside").mkdir()
    (tmp_path / ".env.bak").symlink_to(planted)
    backup = write_env_file(path, {"LLM_MODEL": "m"})
    assert not planted.exists()  # the key went nowhere the link pointed
    assert backup == tmp_path / ".env.bak.1"
    assert backup.read_text() == f"LLM_API_KEY={KEY}\n"
    assert (tmp_path / ".env.bak").is_symlink()  # left as it was


def test_a_backup_holding_a_key_is_created_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Created 0600, not made so afterwards: with the after-the-fact chmod taken away it
    is still 0600 (a shared, 0644 file with a key in it)."""
    path = tmp_path / ".env"
    path.write_text(f"GROQ_API_KEY={KEY}\n")
    path.chmod(0o644)
    old_umask = os.umask(0o022)
    monkeypatch.setattr(os, "fchmod", lambda fd, mode: None)
    monkeypatch.setattr(os, "chmod", lambda *a, **k: None)
    try:
        backup = write_env_file(path, {"LLM_MODEL": "m"})
    finally:
        os.umask(old_umask)
    assert backup is not None
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert backup.read_text() == f"GROQ_API_KEY={KEY}\n"


def test_files_without_a_key_keep_their_mode_and_one_with_a_key_becomes_private(
    tmp_path: Path,
) -> None:
    path = tmp_path / ".env"
    path.write_text("LOG_LEVEL=debug\n")
    path.chmod(0o640)
    backup = write_env_file(path, {"LLM_MODEL": "m"})
    assert backup is not None and stat.S_IMODE(backup.stat().st_mode) == 0o640
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    # a key already in the file (not one setup wrote) makes it owner-only too
    path.write_text(f"OPENAI_API_KEY={KEY}\n")
    write_env_file(path, {"LLM_MODEL": "m"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
