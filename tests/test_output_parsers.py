"""The reasoning filter and the text tool-call parser, on every way a stream can be split."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from providers.reasoning import ReasoningFilter
from providers.text_tool_calls import parse_text_tool_calls

THOUGHT = "the user wants a number"
STREAMS = {
    f"<think>{THOUGHT}</think>\n\nIt is four.": ("It is four.", False),
    f"{THOUGHT}\n</think>\n\nIt is four.": ("It is four.", True),
    f"<|channel|>analysis<|message|>{THOUGHT}<|end|><|start|>assistant<|channel|>final"
    "<|message|>It is four.<|return|>": ("It is four.", False),
    "It is four, <b>really</b>.": ("It is four, <b>really</b>.", False),
}


def filtered(chunks: list[str], *, hold: bool) -> tuple[str, ReasoningFilter]:
    f = ReasoningFilter(hold_for_closing_tag=hold)
    return "".join([f.push(c) for c in chunks]) + f.finish(), f


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


@st.composite
def split_streams(draw: st.DrawFn) -> tuple[str, list[str]]:
    """One of `STREAMS`, and its deltas cut anywhere (a marker split included)."""
    stream = draw(st.sampled_from(sorted(STREAMS)))
    return stream, split(stream, draw(st.lists(st.integers(min_value=0), max_size=12)))


@given(split_streams())
def test_a_backend_expected_to_think_never_lets_a_thought_through_however_it_is_split(
    stream_and_deltas: tuple[str, list[str]],
) -> None:
    stream, deltas = stream_and_deltas
    said, _ = filtered(deltas, hold=True)
    assert said == STREAMS[stream][0]


@given(split_streams())
def test_without_expecting_thought_only_a_bare_closing_tag_leaks_and_is_noticed(
    stream_and_deltas: tuple[str, list[str]],
) -> None:
    stream, deltas = stream_and_deltas
    expected, bare = STREAMS[stream]
    said, f = filtered(deltas, hold=False)
    assert f.saw_bare_closing_tag is bare
    assert said == expected or (bare and said.endswith(expected))


def test_harmony_commentary_to_a_function_is_kept_as_a_call() -> None:
    stream = (
        "<|channel|>analysis<|message|>Need the time.<|end|><|start|>assistant"
        '<|channel|>commentary to=functions.get_time <|constrain|>json<|message|>{"tz": "UTC"}'
        "<|call|>"
    )
    said, f = filtered(list(stream), hold=False)
    assert said == ""
    assert [(c.name, json.loads(c.arguments)) for c in f.harmony_calls] == [
        ("get_time", {"tz": "UTC"})
    ]


def test_text_tool_calls_name_offered_tools_only_and_keep_their_order() -> None:
    text = (
        'Sure. <tool_call>{"name": "b", "arguments": {"x": 1}}</tool_call> '
        '<function=a>{"name": "not-a-call"}</function> {"name": "nope", "arguments": {}}'
    )
    calls = parse_text_tool_calls(text, {"a", "b"})
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("b", {"x": 1}),
        ("a", {"name": "not-a-call"}),
    ]
    assert len({c.call_id for c in calls}) == 2


def test_text_whose_arguments_are_not_an_object_is_no_call() -> None:
    assert (
        parse_text_tool_calls('<tool_call>{"name": "a", "arguments": [1]}</tool_call>', {"a"}) == []
    )
    assert parse_text_tool_calls("I like {braces} and [brackets].", {"a"}) == []


# --- the hold at the start of a reply, from a backend not known to think -------------

HOLD = 32


def held(chunks: list[str], hold: int = HOLD) -> tuple[str, ReasoningFilter]:
    f = ReasoningFilter(hold_start=hold)
    return "".join([f.push(c) for c in chunks]) + f.finish(), f


SHORT_THOUGHTS = st.text(
    alphabet=st.characters(blacklist_characters="<", blacklist_categories=["Cs"]),
    min_size=1,
    max_size=HOLD - 1,
)
REPLIES = st.text(
    alphabet=st.characters(blacklist_characters="<", blacklist_categories=["Cs"]), max_size=80
)


@given(
    SHORT_THOUGHTS,
    st.sampled_from(["</think>", "</thinking>"]),
    REPLIES,
    st.lists(st.integers(min_value=0), max_size=12),
)
def test_a_bare_closing_tag_within_the_hold_is_never_said_nor_the_thought_before_it(
    thought: str, tag: str, reply: str, cuts: list[int]
) -> None:
    text = f"{thought}{tag}{reply}"
    said, f = held(split(text, cuts))
    # the thought's leading whitespace is a reply's leading whitespace: nothing said
    if thought.strip():
        assert f.saw_bare_closing_tag
        assert said == (reply.lstrip() and reply.lstrip())
        assert thought.strip() not in said or thought.strip() in reply
    assert tag not in said


@given(REPLIES, st.lists(st.integers(min_value=0), max_size=12))
def test_a_reply_without_thought_is_said_whole_however_it_is_split(
    reply: str, cuts: list[int]
) -> None:
    said, f = held(split(reply, cuts))
    assert said == reply.lstrip()  # a reply's leading whitespace is never said
    assert not f.saw_bare_closing_tag
    # only a reply that filled the hold shows that this backend answers plainly
    assert f.held_start_was_reply == (len(reply.lstrip()) >= HOLD)


@given(st.lists(st.integers(min_value=0), max_size=12))
def test_a_closing_tag_past_the_hold_is_dropped_and_noticed(cuts: list[int]) -> None:
    text = "x" * HOLD + " more thought</think>It is four."
    said, f = held(split(text, cuts))
    assert said == "x" * HOLD + " more thoughtIt is four."
    assert f.saw_bare_closing_tag


def test_only_the_start_of_a_reply_is_held() -> None:
    f = ReasoningFilter(hold_start=HOLD)
    start = "It is four, and that is all."  # shorter than the hold and a tag after it
    assert f.push(start) == ""
    assert f.push(" It was always four, since the start of time.") == (
        start + " It was always four, since the start of time."
    )
    assert f.push(" Then more.") == " Then more."
    assert f.finish() == ""
    # a server that sends thoughts apart: its content is the reply, held no more
    g = ReasoningFilter(hold_start=HOLD)
    assert g.push("It is four.") == ""
    assert g.thoughts_apart() == "It is four."
    assert g.push(" Yes.") == " Yes."
