"""A segment's transcript, sent behind the previous segment's audio, loses the words the
previous segment gave and keeps every word of its own."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.voice.stitching import _norm, _substitution, word_distance, words_after


@pytest.mark.parametrize(
    ("before", "transcript", "new"),
    [
        # the context word was left out of the transcript: no real word goes with it
        ("Yes", "Book it for tomorrow.", "Book it for tomorrow."),
        ("Sure", "Two people at eight.", "Two people at eight."),
        # heard a little differently the second time
        ("Yes", "Yeah, book it for tomorrow.", "book it for tomorrow."),
        ("What is the capital on-", "What is the capital of Australia?", "Australia?"),
        ("Who wrote the", "Who wrote that novel Moby Dick?", "novel Moby Dick?"),
        ("How is the weather in?", "How is the weather in Paris today?", "Paris today?"),
        ("Please set a timer for...", "Please set a timer for 10 minutes.", "10 minutes."),
        ("", "Hello there.", "Hello there."),
        ("Who wrote the", "Who wrote the", ""),
    ],
)
def test_words_after_the_context(before: str, transcript: str, new: str) -> None:
    assert words_after(before, transcript) == new


# two vocabularies no word of which sounds like a word of the other
SAID = ["yes", "sure", "please", "what", "is", "the", "capital", "of", "who", "wrote"]
NEW = ["book", "seats", "for", "tomorrow", "paris", "today", "ten", "minutes", "moby", "dick"]
assert all(_substitution(a, b) == 2 for a in SAID for b in NEW)


@settings(max_examples=200)
@given(st.lists(st.sampled_from(SAID), max_size=12), st.lists(st.sampled_from(NEW), max_size=12))
def test_the_context_heard_again_is_dropped_and_every_new_word_kept(
    said: list[str], new: list[str]
) -> None:
    assert words_after(" ".join(said), " ".join(said + new)) == " ".join(new)


@settings(max_examples=200)
@given(
    st.lists(st.sampled_from(SAID), min_size=1, max_size=12),
    st.lists(st.sampled_from(NEW), max_size=12),
)
def test_a_context_whisper_left_out_takes_no_new_word_with_it(
    said: list[str], new: list[str]
) -> None:
    assert words_after(" ".join(said), " ".join(new)) == " ".join(new)


def _reference(context_words: str, transcript: str) -> str:
    """The split by its definition: each prefix's cost computed on its own."""
    said, words = _norm(context_words), transcript.split()
    if not said:
        return transcript.strip()
    best, best_key = 0, None
    for i in range(len(words) + 1):
        heard = [w for w in (" ".join(_norm(w)) for w in words[:i]) if w]
        key = (_weighted(said, heard), abs(len(heard) - len(said)))
        if best_key is None or key < best_key:
            best, best_key = i, key
    return " ".join(words[best:])


def _weighted(a: list[str], b: list[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + _substitution(x, y))
    return row[-1]


WORDS = st.sampled_from([*SAID, *NEW, "yeah", "on", "that", "-", "Paris?", "10"])


@settings(max_examples=200)
@given(st.lists(WORDS, max_size=10), st.lists(WORDS, max_size=14))
def test_one_table_gives_the_split_every_prefix_would(said: list[str], heard: list[str]) -> None:
    assert words_after(" ".join(said), " ".join(heard)) == _reference(
        " ".join(said), " ".join(heard)
    )


def test_word_distance_counts_substitutions_insertions_and_deletions() -> None:
    assert word_distance(["a", "b", "c"], ["a", "b", "c"]) == 0
    assert word_distance(["a", "b", "c"], ["a", "b", "b", "c"]) == 1  # a doubled word
    assert word_distance(["a", "b", "c"], ["a", "c"]) == 1  # a lost word
    assert word_distance(["a", "b"], ["x", "y"]) == 2
    assert word_distance("yes", "yeah") == 2  # characters too
