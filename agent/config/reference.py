"""The configuration page, docs/configuration.md, generated from the settings schema.

    python -m agent.config.reference > docs/configuration.md

Every variable `Settings` reads, under its group's heading (agent/config/schema.py), with
the names the environment may give it (aliases and env prefix included), its default,
what it accepts and its description (the docstring under the field); then the keys of
the JSON entries some variables hold (`LLM_FALLBACKS`), each provider's defaults and the
vendor key variables (`GROQ_API_KEY`) read from the providers' presets. A secret's
default is never shown. The output depends on the code alone: tests/test_docs.py
regenerates it and compares, so the page cannot drift from the schema.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, get_args

from pydantic import AliasChoices, AliasPath, BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from agent.config.settings import Settings
from providers import PRESETS, STT_PRESETS, TTS_PRESETS, ProviderPreset, SpeechPreset

REGENERATE = "python -m agent.config.reference > docs/configuration.md"
SCHEMA_FILE = "agent/config/schema.py"

Schema = Mapping[str, Any]


class UndocumentedSetting(Exception):
    """A field has no description; the message names each and where to add one."""


def slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def env_names(settings_cls: type[BaseSettings], name: str, field: FieldInfo) -> list[str]:
    """The environment variables that set field `name`, as pydantic-settings reads them:
    its aliases if it has any (no prefix then), else `env_prefix` + its name."""
    alias = field.validation_alias or field.alias
    if isinstance(alias, str):
        names = [alias]
    elif isinstance(alias, AliasChoices):
        names = [c if isinstance(c, str) else str(c.path[0]) for c in alias.choices]
    elif isinstance(alias, AliasPath):
        names = [str(alias.path[0])]
    else:
        names = [str(settings_cls.model_config.get("env_prefix", "")) + name]
    if settings_cls.model_config.get("case_sensitive", False):
        return names
    return [n.upper() for n in names]


def render(settings_cls: type[BaseSettings] = Settings) -> str:
    """The whole page; `UndocumentedSetting` if any field lacks a description."""
    _check_descriptions(settings_cls)
    schema = settings_cls.model_json_schema(by_alias=False)
    headings = {m.__name__: _entry_heading(settings_cls, m) for m in _entry_models(settings_cls)}
    groups = list(_groups(settings_cls))
    lines = [
        "# Configuration",
        "",
        f"<!-- Generated from {SCHEMA_FILE}: edit the docstrings there, then run",
        f"     {REGENERATE}",
        "     (tests/test_docs.py fails while this page and the schema differ). -->",
        "",
        "Every variable is read from the environment, which wins, or from a `.env` file in",
        "the working directory ([`.env.example`](../.env.example) works as one unchanged).",
        "Names are case-insensitive; `VAR=` (empty) counts as unset. A wrong or missing value",
        "stops start-up with one line naming the variable, and exit code 2.",
        "",
        " · ".join(f"[{title}](#{slug(title)})" for title, _, _ in groups),
        "",
    ]
    for title, doc, fields in groups:
        lines += _group(settings_cls, title, doc, fields, schema, headings)
    lines += _entries(settings_cls, schema, headings)
    lines += _provider_defaults()
    lines += _vendor_keys()
    return "\n".join(lines).rstrip("\n") + "\n"


def _check_descriptions(settings_cls: type[BaseSettings]) -> None:
    missing = [
        f"{model.__name__}.{name}"
        for model in (settings_cls, *_entry_models(settings_cls))
        for name, field in model.model_fields.items()
        if not (field.description or "").strip()
    ]
    if missing:
        raise UndocumentedSetting(
            f"no description for {', '.join(missing)}: add a docstring under each field "
            f"({SCHEMA_FILE}), then run `{REGENERATE}`"
        )


def _groups(
    settings_cls: type[BaseSettings],
) -> Iterator[tuple[str, str, list[tuple[str, FieldInfo]]]]:
    """(heading, text, fields) per class that declares fields, in the fields' order."""
    by_owner: dict[type, list[tuple[str, FieldInfo]]] = {}
    for name, field in settings_cls.model_fields.items():
        owner = next(c for c in settings_cls.__mro__ if name in vars(c).get("__annotations__", {}))
        by_owner.setdefault(owner, []).append((name, field))
    for owner, fields in by_owner.items():
        doc = (owner.__doc__ or "").strip() if owner is not settings_cls else ""
        title, _, text = doc.partition("\n")
        yield title.strip().rstrip(".") or "More settings", " ".join(text.split()), fields


def _group(
    settings_cls: type[BaseSettings],
    title: str,
    doc: str,
    fields: list[tuple[str, FieldInfo]],
    schema: Schema,
    headings: Mapping[str, str],
) -> list[str]:
    lines = [f"## {title}", ""]
    if doc:
        lines += [doc, ""]
    lines += ["| Variable | Default | Accepts | Description |", "|---|---|---|---|"]
    for name, field in fields:
        prop = schema["properties"][name]
        variable = " or ".join(f"`{n}`" for n in env_names(settings_cls, name, field))
        lines.append(_row(variable, field, prop, headings))
    return [*lines, ""]


def _row(key: str, field: FieldInfo, prop: Schema, headings: Mapping[str, str]) -> str:
    description = " ".join((field.description or "").split())
    cells = [key, _default(field, prop), _accepts(prop, headings), description]
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _default(field: FieldInfo, prop: Schema) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if _is_secret(prop):
        return "not shown"
    if value == "":
        return "empty"
    return _code(_env_value(value))


def _env_value(value: object) -> str:
    """`value` as one would write it in the environment."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, list | tuple | dict):
        return _json(value)
    return str(value)


def _json(value: object) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)


def _number(value: float | int) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _code(text: str) -> str:
    fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _is_secret(prop: Schema) -> bool:
    return bool(prop.get("writeOnly")) or any(_is_secret(p) for p in prop.get("anyOf", ()))


def _accepts(prop: Schema, headings: Mapping[str, str]) -> str:
    """What a value may be, in words, from the JSON schema of the field."""
    if "accepts" in prop:  # the schema's own words (agent/config/schema.py, `_accepts`)
        return str(prop["accepts"])
    if "anyOf" in prop:
        kinds = [_accepts(p, headings) for p in prop["anyOf"] if p.get("type") != "null"]
        return " or ".join(dict.fromkeys(kinds))
    if "enum" in prop:
        return ", ".join(_code(str(v)) for v in prop["enum"])
    if "$ref" in prop:
        return f"JSON object ({_entry_link(prop['$ref'], headings)})"
    kind = prop.get("type")
    if kind == "boolean":
        return "`true`, `false`"
    if kind in ("integer", "number"):
        return " ".join(["integer" if kind == "integer" else "number", _bounds(prop)]).strip()
    if kind == "string":
        return {"password": "secret", "path": "path"}.get(prop.get("format", ""), "text")
    if kind == "array":
        items = prop.get("items", {})
        if "$ref" in items:
            return f"JSON list ({_entry_link(items['$ref'], headings)})"
        return "JSON list"
    return "JSON object" if kind == "object" else "any"


def _bounds(prop: Schema) -> str:
    marks = (
        ("exclusiveMinimum", ">"),
        ("minimum", "≥"),
        ("exclusiveMaximum", "<"),
        ("maximum", "≤"),
    )
    return ", ".join(f"{mark} {_number(prop[k])}" for k, mark in marks if k in prop)


def _entry_models(settings_cls: type[BaseSettings]) -> list[type[BaseModel]]:
    """Models some variables hold as JSON (their entries), in the order first used."""
    found: dict[type[BaseModel], None] = {}
    for field in settings_cls.model_fields.values():
        for model in _models_in(field.annotation):
            found.setdefault(model, None)
    return list(found)


def _models_in(annotation: object) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in get_args(annotation):
        yield from _models_in(arg)


def _holders(settings_cls: type[BaseSettings], model: type[BaseModel]) -> list[str]:
    return [
        env
        for name, field in settings_cls.model_fields.items()
        if model in set(_models_in(field.annotation))
        for env in env_names(settings_cls, name, field)
    ]


def _direct_holders(settings_cls: type[BaseSettings], model: type[BaseModel]) -> list[str]:
    """The variables that hold one `model` (not a list of them): pydantic-settings also
    reads their keys one at a time, as `NAME<env_nested_delimiter>KEY`."""
    return [
        env
        for name, field in settings_cls.model_fields.items()
        if model is field.annotation or model in get_args(field.annotation)
        for env in env_names(settings_cls, name, field)
    ]


def _entry_heading(settings_cls: type[BaseSettings], model: type[BaseModel]) -> str:
    return "Entries of " + ", ".join(f"`{n}`" for n in _holders(settings_cls, model))


def _entry_link(ref: str, headings: Mapping[str, str]) -> str:
    # `#/$defs/LLMFallback`: the JSON schema names the model
    return f"[keys](#{slug(headings[ref.rsplit('/', 1)[-1]])})"


def _entries(
    settings_cls: type[BaseSettings], schema: Schema, headings: Mapping[str, str]
) -> list[str]:
    models = _entry_models(settings_cls)
    if not models:
        return []
    lines = ["## JSON entries", ""]
    delimiter = settings_cls.model_config.get("env_nested_delimiter")
    for model in models:
        lines += [f"### {headings[model.__name__]}", ""]
        doc = " ".join((model.__doc__ or "").split())
        if doc:
            lines += [doc, ""]
        direct = _direct_holders(settings_cls, model)
        if delimiter and direct:
            first = next(iter(model.model_fields), "key")
            if not settings_cls.model_config.get("case_sensitive", False):
                first = first.upper()
            lines += [f"A single key may also be set as `{direct[0]}{delimiter}{first}`.", ""]
        lines += ["| Key | Default | Accepts | Description |", "|---|---|---|---|"]
        props = schema["$defs"][model.__name__]["properties"]
        for name, field in model.model_fields.items():
            lines.append(_row(f"`{name}`", field, props[name], headings))
        lines.append("")
    return lines


def _provider_defaults() -> list[str]:
    lines = [
        "## Provider defaults",
        "",
        "What each provider fills in where its variables are unset. A key marked required",
        "must be set in the backend's own key variable or in the vendor's.",
        "",
    ]
    tables: tuple[tuple[str, Iterable[ProviderPreset | SpeechPreset]], ...] = (
        ("LLM", PRESETS.values()),
        ("STT", STT_PRESETS.values()),
        ("TTS", TTS_PRESETS.values()),
    )
    for kind, presets in tables:
        voice = kind == "TTS"
        lines += [
            f"### `{kind}_PROVIDER`",
            "",
            f"| Provider | `{kind}_BASE_URL` | `{kind}_MODEL` |"
            + (f" `{kind}_VOICE` |" if voice else "")
            + " Key |",
            "|---|---|---|" + ("---|" if voice else "") + "---|",
        ]
        for p in presets:
            cells = [_code(p.name), _or_required(p.default_base_url), _or_required(p.default_model)]
            if voice:
                cells.append(_or_required(getattr(p, "default_voice", None)))
            cells.append(_key(p))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _or_required(value: str | None) -> str:
    return _code(value) if value else "required"


def _key(preset: ProviderPreset | SpeechPreset) -> str:
    if preset.api_key_env is None:
        return "optional"
    return f"`{preset.api_key_env}`" + (" (required)" if preset.requires_api_key else "")


def _vendor_keys() -> list[str]:
    readers: dict[str, list[str]] = {}
    for kind, presets in (("LLM", PRESETS), ("STT", STT_PRESETS), ("TTS", TTS_PRESETS)):
        for p in presets.values():
            if p.api_key_env:
                readers.setdefault(p.api_key_env, []).append(f"`{kind}_PROVIDER={p.name}`")
    lines = [
        "## Vendor keys",
        "",
        "Read when the backend's own key (`LLM_API_KEY`, `STT_API_KEY`, `TTS_API_KEY`, or a",
        "fallback entry's `api_key`) is unset, so one key serves every role of a vendor.",
        "",
        "| Variable | Read by |",
        "|---|---|",
    ]
    lines += [f"| `{env}` | {', '.join(who)} |" for env, who in sorted(readers.items())]
    return [*lines, ""]


def main() -> int:
    try:
        page = render()
    except UndocumentedSetting as e:
        print(f"agent.config.reference: {e}", file=sys.stderr)
        return 1
    # bytes: the page is UTF-8 whatever the locale says
    sys.stdout.buffer.write(page.encode("utf-8"))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
