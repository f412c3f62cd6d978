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
