"""The docs stay true to the code and to each other.

- docs/configuration.md is what `python -m agent.config.reference` writes from the settings
  schema today: every variable, under every name the environment may give it, described,
  with no secret's default on the page.
- README.md stays short enough to read in two minutes.
- Every relative link in README.md and docs/ leads to a file that exists (and a `#heading`
  to a heading there).
- .env.example names only variables the schema knows (tests/test_env_example.py checks
  the other way: that it names every one).
"""

from __future__ import annotations

import difflib
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent.config.reference import (
    REGENERATE,
    UndocumentedSetting,
    env_names,
    render,
    slug,
)
from agent.config.settings import Settings
from providers import PRESETS, STT_PRESETS, TTS_PRESETS

ROOT = Path(__file__).resolve().parents[1]
CONFIGURATION_PAGE = ROOT / "docs" / "configuration.md"
README = ROOT / "README.md"
MARKDOWN = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 200


def _env_names(settings_cls: type[BaseSettings]) -> set[str]:
    return {
        env
        for name, field in settings_cls.model_fields.items()
        for env in env_names(settings_cls, name, field)
    }


@pytest.mark.timeout(90)
def test_configuration_page_is_what_the_generator_writes_from_the_schema() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agent.config.reference"],
        cwd=ROOT,
        capture_output=True,
        timeout=80,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    generated = result.stdout.decode("utf-8")
    committed = CONFIGURATION_PAGE.read_text(encoding="utf-8")
    if generated != committed:
        diff = difflib.unified_diff(
            committed.splitlines(), generated.splitlines(), "committed", "generated", lineterm=""
        )
        pytest.fail(
            f"docs/configuration.md differs from the settings schema; run `{REGENERATE}`\n"
            + "\n".join(list(diff)[:60])
        )


def test_configuration_page_lists_every_variable_and_vendor_key() -> None:
    page = render()
    rows = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)`", page, re.MULTILINE))
    vendor_keys = {
        p.api_key_env
        for presets in (PRESETS, STT_PRESETS, TTS_PRESETS)
        for p in presets.values()
        if p.api_key_env
    }
    assert "GROQ_API_KEY" in vendor_keys  # the presets do name vendor variables
    assert rows == _env_names(Settings) | vendor_keys


def test_configuration_page_shows_no_secret_default() -> None:
    class WithSecrets(BaseSettings):
        model_config = SettingsConfigDict(use_attribute_docstrings=True)

        token: SecretStr = SecretStr("s3cr3t-default-value")
        """A token."""
        plain: str = "visible-default-value"
        """Not a secret."""

    page = render(WithSecrets)
    assert "s3cr3t-default-value" not in page
    assert "| `TOKEN` | not shown | secret | A token. |" in page
    assert "`visible-default-value`" in page
    # the real schema: the LiveKit secret has a default, and the page keeps it back
    assert "| `LIVEKIT_API_SECRET` | not shown | secret |" in render()


def test_a_setting_without_description_stops_the_generator_naming_it() -> None:
    class Undescribed(BaseSettings):
        model_config = SettingsConfigDict(use_attribute_docstrings=True)

        described: int = 1
        """Has one."""
        bare: int = 2

    with pytest.raises(UndocumentedSetting) as e:
        render(Undescribed)
    assert re.match(r"no description for (.*?):", str(e.value))[1] == "Undescribed.bare"  # type: ignore[index]
    assert REGENERATE in str(e.value)


def test_aliased_prefixed_and_nested_settings_are_listed_under_the_names_they_are_read_by(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Entry(BaseModel):
        model_config = ConfigDict(use_attribute_docstrings=True)

        url: str = "http://a"
        """Where."""

    class Tiny(BaseSettings):
        model_config = SettingsConfigDict(
            env_prefix="APP_", env_nested_delimiter="__", use_attribute_docstrings=True
        )

        plain: int = 1
        """Prefixed."""
        renamed: int = Field(default=2, validation_alias=AliasChoices("NEW_NAME", "OLD_NAME"))
        """Read under two names."""
        entry: Entry = Field(default_factory=Entry)
        """One nested object."""

    page = render(Tiny)
    assert "| `APP_PLAIN` | `1` |" in page
    assert "| `NEW_NAME` or `OLD_NAME` | `2` |" in page
    assert "### Entries of `APP_ENTRY`" in page
    assert "| `url` | `http://a` | text | Where. |" in page
    assert "`APP_ENTRY__URL`" in page
    # the names on the page are the names pydantic-settings reads
    for name, value in (("APP_PLAIN", "7"), ("NEW_NAME", "8"), ("APP_ENTRY__URL", "http://b")):
        monkeypatch.setenv(name, value)
    assert (Tiny().plain, Tiny().renamed, Tiny().entry.url) == (7, 8, "http://b")
    monkeypatch.delenv("NEW_NAME")
    monkeypatch.setenv("OLD_NAME", "9")
    assert Tiny().renamed == 9


def test_readme_reads_in_two_minutes() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move reference to docs/"
    )


_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.MULTILINE)


def _links(text: str) -> list[str]:
    # links inside code blocks and code spans are examples, not links
    return _LINK.findall(_CODE.sub("", _FENCE.sub("", text)))


def _anchors(path: Path) -> set[str]:
    return {slug(h) for h in _HEADING.findall(_FENCE.sub("", path.read_text(encoding="utf-8")))}


def test_every_relative_link_in_readme_and_docs_leads_somewhere() -> None:
    broken = []
    checked = 0
    for page in MARKDOWN:
        for target in _links(page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("//"):
                continue  # a URL: no network at test time
            checked += 1
            path_part, _, anchor = target.partition("#")
            path = (page.parent / path_part).resolve() if path_part else page
            where = f"{page.relative_to(ROOT)}: ({target})"
            if not path.exists():
                broken.append(f"{where}: no such file")
            elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
                broken.append(f"{where}: no heading #{anchor}")
    assert checked > 20  # the pages do link to each other; a parser that finds none is broken
    assert not broken, "\n".join(broken)


def test_env_example_names_only_variables_the_schema_knows() -> None:
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    named = set(re.findall(r"^#?\s?([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))
    vendor_keys = {
        p.api_key_env
        for presets in (PRESETS, STT_PRESETS, TTS_PRESETS)
        for p in presets.values()
        if p.api_key_env
    }
    unknown = named - _env_names(Settings) - vendor_keys
    assert not unknown, f".env.example names variables no setting reads: {sorted(unknown)}"
