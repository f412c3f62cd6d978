"""The speech filter keeps every tool call written as text out of speech, says everything
else, and does both the same way however the stream is split into deltas."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.engine.speech_filter import TOOL_CALL_MARKERS, ToolCallTextFilter

TOKYO = json.dumps({"name": "get_current_time", "arguments": {"timezone": "Asia/Tokyo"}})
PARIS = json.dumps({"name": "get_current_time", "arguments": {"timezone": "Europe/Paris"}})
# what Qwen2.5-Coder-1.5B sends through llama.cpp with its own chat template
QWEN = '```json\n{"name": "get_current_time", "arguments": {"timezone": "Asia/Tokyo"}}\n```'
PREFACE = "Sure, let me check. "

STREAMS: dict[str, tuple[str, str]] = {
    # text: (what is said, what is withheld as a call)
    TOKYO: ("", TOKYO),
    f"[\n{TOKYO}]": ("", f"[\n{TOKYO}]"),
    f"[ {TOKYO}, {PARIS}]": ("", f"[ {TOKYO}, {PARIS}]"),
    f"{PREFACE}{TOKYO}": (PREFACE, TOKYO),
    f"{PREFACE}{TOKYO} Checking now.": (PREFACE, f"{TOKYO} Checking now."),
    QWEN: ("", QWEN),
    f"```\n{TOKYO}\n```": ("", f"```\n{TOKYO}\n```"),
    f"```json {TOKYO} ```": ("", f"```json {TOKYO} ```"),
    f"```json\n{TOKYO}\n{PARIS}\n```": ("", f"```json\n{TOKYO}\n{PARIS}\n```"),
    f"```json\n[{TOKYO}, {PARIS}]\n```": ("", f"```json\n[{TOKYO}, {PARIS}]\n```"),
    f"Let me look that up.\n{QWEN}": ("Let me look that up.\n", QWEN),
    f"{QWEN}\nThe time in Tokyo is shown above.": (
        "",
        f"{QWEN}\nThe time in Tokyo is shown above.",
    ),
    f"```json\n{TOKYO}": ("", f"```json\n{TOKYO}"),  # a fence the pass never closed
    '{"name": "get_current_time", "argu': ("", '{"name": "get_current_time", "argu'),
    f"{PREFACE}<tool_call>{TOKYO}</tool_call>": (PREFACE, f"<tool_call>{TOKYO}</tool_call>"),
    f"[TOOL_CALLS][{TOKYO}]": ("", f"[TOOL_CALLS][{TOKYO}]"),
    # seen from Qwen2.5-Coder: the template's `<tools>` wrapper, and doubled braces
    f"<tools>\n{TOKYO}\n</tools>": ("", f"<tools>\n{TOKYO}\n</tools>"),
    f"{PREFACE}<tools>{TOKYO}</tools>": (PREFACE, f"<tools>{TOKYO}</tools>"),
    f"{{{TOKYO}}}": ("", f"{{{TOKYO}}}"),
    f"{PREFACE}{{{TOKYO}}} Done.": (PREFACE, f"{{{TOKYO}}} Done."),
    f"{QWEN}\n{{{PARIS}}}": ("", f"{QWEN}\n{{{PARIS}}}"),
    f"{TOKYO}{PARIS}": ("", f"{TOKYO}{PARIS}"),
    f"{PREFACE}{TOKYO}\n{PARIS}": (PREFACE, f"{TOKYO}\n{PARIS}"),
    f"[[{TOKYO}]]": ("", f"[[{TOKYO}]]"),
    # words, said as they are
    "[laughs] That is a good one.": ("[laughs] That is a good one.", ""),
    "Use {curly} braces, or [square] ones.": ("Use {curly} braces, or [square] ones.", ""),
    'The answer is {"value": 4}.': ('The answer is {"value": 4}.', ""),
    "Run `ls` then ``x``.": ("Run `ls` then ``x``.", ""),
    "Code:\n```python\nprint('hi')\n```\nDone.": ("Code:\n```python\nprint('hi')\n```\nDone.", ""),
    "If a < b and c > d, then [x] holds.": ("If a < b and c > d, then [x] holds.", ""),
    "It costs {": ("It costs {", ""),
    "Say {{hello}} and [[world]].": ("Say {{hello}} and [[world]].", ""),
    "Ends with [": ("Ends with [", ""),
    "Ends with ``": ("Ends with ``", ""),
    "Ends with <tool_c": ("Ends with <tool_c", ""),
    "  \n It is four.": ("  \n It is four.", ""),
    "  \n ": ("", ""),
}


def filtered(deltas: list[str]) -> tuple[str, ToolCallTextFilter]:
    f = ToolCallTextFilter()
    return "".join([f.push(d) for d in deltas]) + f.flush(), f


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


@st.composite
def split_streams(draw: st.DrawFn) -> tuple[str, list[str]]:
    """One of `STREAMS`, its deltas cut anywhere (one character each, at the most)."""
    stream = draw(st.sampled_from(sorted(STREAMS)))
    cuts = draw(st.lists(st.integers(min_value=0), max_size=len(stream)))
    return stream, split(stream, cuts)


@pytest.mark.parametrize("stream", sorted(STREAMS))
def test_each_stream_whole_and_one_character_at_a_time(stream: str) -> None:
    said, withheld = STREAMS[stream]
    for deltas in ([stream], list(stream)):
        out, f = filtered(deltas)
        assert (out, f.suppressed) == (said, withheld)


@settings(max_examples=200)
@given(split_streams())
def test_calls_are_withheld_and_words_said_however_the_stream_is_split(
    stream_and_deltas: tuple[str, list[str]],
) -> None:
    stream, deltas = stream_and_deltas
    out, f = filtered(deltas)
    assert (out, f.suppressed) == STREAMS[stream]


# text made of the pieces that matter: markers and their starts, JSON, fences, words
PIECES = [
    "Sure",
    " ",
    ", ",
    ".",
    "\n",
    "{",
    "}",
    "[",
    "]",
    '"',
    "`",
    "```",
    "```json\n",
    "<",
    ">",
    "laughs",
    '"name": ',
    '"get_current_time"',
    TOKYO,
    *TOOL_CALL_MARKERS,
    *(m[:4] for m in TOOL_CALL_MARKERS),
]


@settings(max_examples=200)
@given(st.lists(st.sampled_from(PIECES), max_size=20), st.lists(st.integers(min_value=0)))
def test_what_is_said_and_withheld_depends_only_on_the_text(
    pieces: list[str], cuts: list[int]
) -> None:
    text = "".join(pieces)
    whole, f_whole = filtered([text])
    out, f = filtered(split(text, cuts))
    assert (out, f.suppressed) == (whole, f_whole.suppressed)
    # nothing is lost or said twice: words, then the withheld call (leading space aside)
    assert text.endswith(out + f.suppressed)
    assert not text[: len(text) - len(out + f.suppressed)].strip()


WORDS = st.text(
    alphabet=st.characters(
        blacklist_characters="<[{`", blacklist_categories=["Cs"], min_codepoint=32
    ),
    min_size=1,
)


@given(st.lists(WORDS, min_size=1, max_size=10))
def test_ordinary_text_is_released_as_it_arrives(deltas: list[str]) -> None:
    f = ToolCallTextFilter()
    held, started = "", False
    for delta in deltas:
        held += delta
        out = f.push(delta)
        # only a reply's opening whitespace waits for its first word; after that, a delta
        # of whitespace alone goes out too
        started = started or bool(held.strip())
        assert out == (held if started else "")
        if started:
            held = ""
    assert f.flush() == "" and not f.tripped


@pytest.mark.parametrize(
    ("delta", "held"),
    [
        ("Let me see <tool_c", "<tool_c"),
        ("Let me see [TOOL_", "[TOOL_"),
        ("Let me see ``", "``"),
        ("Let me see {", "{"),
        ("Let me see [ ", "[ "),
    ],
)
def test_only_what_may_open_a_call_is_held_back(delta: str, held: str) -> None:
    f = ToolCallTextFilter()
    assert f.push(delta) == delta.removesuffix(held)
    assert f.push("x") == held + "x"  # the next character decides


# --- whatever the words around it and the cuts, no fragment of a call is said

CALL_FORMS = [
    TOKYO,
    f"[{TOKYO}, {PARIS}]",
    f"{TOKYO}\n{PARIS}",
    f"{{{TOKYO}}}",
    QWEN,
    f"```\n{TOKYO}\n```",
    f"```json\n[{TOKYO}, {PARIS}]\n```",
    f"```json\n{TOKYO}\n{PARIS}\n```",
    f"```json {TOKYO} ```",
    f"{QWEN}\n{{{PARIS}}}",
    f"<tools>\n{TOKYO}\n</tools>",
    f"<tool_call>\n{TOKYO}\n</tool_call>",
    f"[TOOL_CALLS][{TOKYO}]",
    '<function=get_current_time>{"timezone": "Asia/Tokyo"}</function>',
    json.dumps({"name": "get_current_weather", "arguments": {"location": "Tokyo"}}),
    '```json\n{"name": "get_current_weather", "arguments": {}}\n```',
]
PLAIN = st.text(
    alphabet=st.characters(
        blacklist_characters="<[{`", blacklist_categories=["Cs"], min_codepoint=32
    ),
    max_size=30,
)


@settings(max_examples=300)
@given(
    st.sampled_from(CALL_FORMS),
    PLAIN,
    st.sampled_from(["", " ", "\n", "\n\n"]),
    PLAIN,
    st.lists(st.integers(min_value=0), max_size=40),
)
def test_no_fragment_of_a_call_is_said_whatever_the_words_around_it_and_the_cuts(
    call: str, before: str, gap: str, after: str, cuts: list[int]
) -> None:
    text = f"{before}{gap}{call}{gap}{after}"
    out, f = filtered(split(text, cuts))
    # the words before the call are said (a reply of whitespace says nothing) ...
    assert out == (f"{before}{gap}" if before.strip() else "")
    # ... and nothing from the call on, which is withheld whole
    assert f.suppressed == f"{call}{gap}{after}"
    for fragment in ("get_current", "{", "`", "<", "[", "Tokyo", "tools>"):
        assert fragment not in out


@settings(max_examples=300)
@given(
    st.sampled_from(CALL_FORMS),
    PLAIN,
    st.sampled_from(["", " ", "\n"]),
    st.integers(min_value=1),
    st.lists(st.integers(min_value=0), max_size=40),
)
def test_a_failure_inside_a_call_says_the_words_before_it_and_no_fragment_of_it(
    call: str, before: str, gap: str, end: int, cuts: list[int]
) -> None:
    """The pass fails anywhere inside the call (`{"na`, a fence's opening, `<tool_c`):
    what was held of it is dropped, never said in part."""
    text = f"{before}{gap}{call[: 1 + end % (len(call) - 1)]}"
    f = ToolCallTextFilter()
    out = "".join([f.push(d) for d in split(text, cuts)]) + f.abandon()
    assert out == (f"{before}{gap}" if before.strip() else "")
    assert f.abandon() == ""
