"""Property-based: whatever the environment or the server says, a clear error or words.

Never a crash, never a hang.
"""

from __future__ import annotations

import asyncio
import json
import os
import string
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit.agents import llm

from agent.config.resolved import load_config
from agent.config.settings import ConfigError
from agent.tools import get_current_time
from providers import ToolCall
from providers.call_ids import unique_call_ids
from testing.engine import make_engine
from testing.servers.openai_server import Finish, Raw, Reply, ScriptedLLMServer, Text

TIMEOUT = 1.0

VARIABLES = [
    "LLM_PROVIDER",
    "LLM_BASE_URL",
    "LLM_API_KEY",
    "LLM_MODEL",
    "LLM_TIMEOUT",
    "LLM_TEMPERATURE",
    "LLM_MAX_RETRIES",
    "LLM_FALLBACKS",
    "LLM_COOLDOWN",
    "AGENT_INSTRUCTIONS",
    "TOOL_PASS_MODE",
    "MAX_TOOL_ROUNDS",
    "TOOL_TIMEOUT",
    "BUILTIN_TOOLS",
    "LOG_LEVEL",
    "LOG_FORMAT",
]

env_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "0", "-1", "1e309", "nan", "true", "[]", "[{}]", "{}", "null"]),
    st.sampled_from(["ollama", "groq", "openai", "http://127.0.0.1:1/v1", "ftp://x", "http://"]),
    st.builds(
        json.dumps,
        st.lists(
            st.dictionaries(
                st.sampled_from(["provider", "base_url", "model", "api_key", "x"]),
                st.text(max_size=20),
            ),
            max_size=3,
        ),
    ),
)


@pytest.fixture(scope="module")
def clean_environ(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    saved = dict(os.environ)
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("env"))  # no stray .env
    for name in list(os.environ):
        if name.startswith(("LLM_", "AGENT_", "TOOL", "LOG_", "GROQ", "OPENAI", "OPENROUTER")):
            del os.environ[name]
    yield
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.usefixtures("clean_environ")
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(env=st.dictionaries(st.sampled_from(VARIABLES), env_values, max_size=6))
def test_any_environment_loads_or_fails_with_one_line_naming_a_variable(
    env: dict[str, str],
) -> None:
    env = {k: v.replace("\x00", "") for k, v in env.items()}
    for name in VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(env)
    try:
        load_config()
    except ConfigError as e:
        message = str(e)
        assert "\n" not in message
        variable = message.split(":", 1)[0].split("[", 1)[0].split(".", 1)[0]
        assert variable in VARIABLES, message


# --- whatever the server streams --------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


def chunk(choices: Any) -> bytes:
    body = {"id": "x", "object": "chat.completion.chunk", "choices": choices}
    return f"data: {json.dumps(body)}\n\n".encode()


delta_values = st.fixed_dictionaries(
    {},
    optional={
        "content": st.one_of(st.none(), st.text(), st.integers(), json_values),
        "role": st.one_of(st.just("assistant"), json_values),
        "tool_calls": st.one_of(
            json_values,
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "index": st.one_of(st.integers(-2, 3), st.none(), st.text(max_size=2)),
                        "id": st.one_of(st.none(), st.text(max_size=6)),
                        "function": st.one_of(
                            json_values,
                            st.fixed_dictionaries(
                                {},
                                optional={
                                    "name": st.one_of(
                                        st.none(),
                                        st.sampled_from(["get_current_time", "nope"]),
                                        st.text(max_size=8),
                                    ),
                                    "arguments": st.one_of(
                                        st.none(), st.text(max_size=30), json_values
                                    ),
                                },
                            ),
                        ),
                    },
                ),
                max_size=3,
            ),
        ),
    },
)

sse_events = st.one_of(
    delta_values.map(lambda d: chunk([{"index": 0, "delta": d, "finish_reason": None}])),
    json_values.map(lambda v: f"data: {json.dumps(v)}\n\n".encode()),
    st.binary(max_size=64),
    st.text(max_size=64).map(lambda t: f"data: {t}\n\n".encode("utf-8", "surrogatepass")),
    st.sampled_from(
        [
            chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
            chunk([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
            chunk("not a list"),
            b"data: [DONE]\n\n",
            b": keep-alive comment\n\n",
            b'event: error\ndata: {"error": {"message": "boom"}}\n\n',
        ]
    ),
)

replies = st.one_of(
    st.lists(sse_events, max_size=6).map(
        lambda events: Reply.of(*(Raw(e) for e in events), done=False)
    ),
    st.text(max_size=200).map(lambda t: Reply.of(Text(t), Finish("stop"))),
    st.just(Reply.of(Text("word " * 2_000, chunk_words=4), Finish("stop"))),  # a long stream
    st.just(
        Reply.of(
            Raw(
                chunk(
                    [{"index": 0, "delta": {"content": "x" * 1_000_000}, "finish_reason": "stop"}]
                )
            )
        )
    ),
)


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer(default=Reply.of(Finish("stop"))) as server:
        yield server


async def _one_turn(base_url: str) -> str:
    engine = make_engine(base_url, timeout=TIMEOUT)
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="Hi")
    try:
        return "".join([t async for t in engine.run(ctx, [get_current_time])])
    finally:
        await engine.llm.aclose()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(reply=replies)
@pytest.mark.timeout(600)  # 60 examples; a hang the 1 s client timeout missed fails here
def test_any_server_output_ends_in_words_without_crash_or_hang(
    fuzz_server: ScriptedLLMServer, reply: Reply
) -> None:
    fuzz_server.reset()
    fuzz_server.script(reply)
    said = asyncio.run(_one_turn(fuzz_server.base_url))
    assert said.strip()
    # one request per pass at most: tool pass, speaking pass, plain retry (a hang is
    # ended by the client's timeout; one that was not fails on the test's timeout mark)
    assert len(fuzz_server.requests) <= 3


# --- a call written as text, cut anywhere: never said --------------------------------

TOKYO = json.dumps({"name": "get_current_time", "arguments": {"timezone": "Asia/Tokyo"}})
WRITTEN = [
    f"```json\n{TOKYO}\n```",
    f"<tools>\n{TOKYO}\n</tools>",
    f"```json\n{TOKYO}\n```\n{{{TOKYO}}}",
    f"```json\n[{TOKYO}, {TOKYO}]\n```",
    '```json\n{"name": "get_current_weather", "arguments": {"location": "Tokyo"}}\n```',
]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    written=st.sampled_from(WRITTEN),
    before=st.sampled_from(["", "Let me check. ", "Sure.\n"]),
    after=st.sampled_from(["", "\nThat is the time.", " Done."]),
    cuts=st.lists(st.integers(min_value=0), max_size=30),
)
@pytest.mark.timeout(300)
def test_a_call_written_as_text_is_never_said_however_the_deltas_are_cut(
    fuzz_server: ScriptedLLMServer, written: str, before: str, after: str, cuts: list[int]
) -> None:
    text = f"{before}{written}{after}"
    points = sorted({c % (len(text) + 1) for c in cuts})
    deltas = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    fuzz_server.reset()
    # each delta its own chunk (a delta with spaces is cut at them too: more cuts)
    fuzz_server.script(
        Reply.of(*(Text(d, chunk_words=10_000) for d in deltas if d), Finish("stop")),
        Reply.of(Text("It is noon."), Finish("stop")),
    )
    said = asyncio.run(_one_turn(fuzz_server.base_url))
    assert said == f"{before}It is noon."
    for fragment in ("get_current", "{", "`", "<", "Tokyo", "tools>"):
        assert fragment not in said


# --- ids a server reuses: renamed, in the server's own form ---------------------------

ID_FORMS = st.one_of(
    st.from_regex(r"[A-Za-z0-9]{9}", fullmatch=True),  # vLLM's Mistral templates insist
    st.from_regex(r"call_[0-9a-f]{24}", fullmatch=True),
    st.from_regex(r"call_[A-Za-z0-9]{24}", fullmatch=True),
    st.from_regex(r"call_[0-9]{1,3}", fullmatch=True),
    st.from_regex(r"chatcmpl-tool-[0-9a-f]{32}", fullmatch=True),
    st.from_regex(r"toolu_[A-Za-z0-9]{24}", fullmatch=True),
    st.from_regex(r"[a-z]{5,12}", fullmatch=True),
)


def same_form(server_id: str, renamed: str) -> bool:
    """The same prefix (to the last `_`, `-`, `.` or `:`), then a random part of the same
    length drawn from the server's alphabet: its digits, hex, or classes of letters."""
    cut = max(server_id.rfind(c) for c in "_-.:") + 1
    body, new_body = server_id[cut:], renamed[cut:]
    if renamed[:cut] != server_id[:cut] or len(new_body) != len(body):
        return False
    hex_lower = set(string.digits + "abcdef")
    if set(body) <= hex_lower:
        return set(new_body) <= (set(string.digits) if body.isdigit() else hex_lower)
    classes = (string.digits, string.ascii_lowercase, string.ascii_uppercase)
    return set(new_body) <= {c for cls in classes if set(body) & set(cls) for c in cls}


@settings(max_examples=300)
@given(
    ids=st.lists(ID_FORMS, min_size=1, max_size=6),
    repeats=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=12),
)
def test_a_reused_id_is_renamed_to_a_unique_id_of_the_same_form(
    ids: list[str], repeats: list[int]
) -> None:
    taken = ids[: len(ids) // 2]  # the history's ids
    server_ids = [ids[r % len(ids)] for r in repeats]
    calls = [ToolCall(call_id=i, name="get_current_time", arguments="{}") for i in server_ids]
    out = unique_call_ids(calls, taken=taken)
    new_ids = [c.call_id for c in out]
    assert len(set(new_ids)) == len(new_ids) and not set(new_ids) & set(taken)
    for server_id, new_id in zip(server_ids, new_ids, strict=True):
        if new_id == server_id:
            continue
        # a short counter (`call_0`) may grow; every other form keeps its length exactly
        if server_id.startswith("call_") and server_id[5:].isdigit():
            assert new_id.startswith("call_") and new_id[5:].isdigit()
        else:
            assert same_form(server_id, new_id), (server_id, new_id)
        if len(server_id) == 9 and server_id.isalnum():
            assert len(new_id) == 9 and new_id.isalnum() and new_id.isascii()
