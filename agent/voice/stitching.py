"""Stitching the transcripts of segments sent with the segment before them in front.

A short segment is sent behind the previous one's audio (Whisper transcribes "Paris today"
alone as "Power is done"); its transcript then starts with words already given. The split
is where the transcript's start is closest to those words, by a word edit distance in which
a different word costs as much as one dropped and one added, and a word heard a little
differently ("yes" / "yeah", "on" / "of", "the" / "that") costs one: so a context word
Whisper left out never takes a real word with it ("Yes" before "Book it for tomorrow").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

__all__ = ["same_words", "word_distance", "words_after"]


def words_after(context_words: str, transcript: str) -> str:
    """`transcript` (of the previous segment's audio followed by this one's) without the
    words the previous segment already gave (`context_words`)."""
    said, words = _norm(context_words), transcript.split()
    if not said:
        return transcript.strip()
    normed = [" ".join(_norm(w)) for w in words]
    costs = _prefix_costs(said, normed)
    counted = [0]
    for w in normed:
        counted.append(counted[-1] + (1 if w else 0))
    # ties: the split whose prefix is as long as what was said
    best = min(range(len(words) + 1), key=lambda i: (costs[i], abs(counted[i] - len(said))))
    return " ".join(words[best:])


def _prefix_costs(said: list[str], heard: list[str]) -> list[int]:
    """For each i, the cost of turning `said` into the first i words of `heard` (empty
    words, punctuation alone, are free): the last row of one edit-distance table."""
    # columns: prefixes of `said`; one row per word of `heard`
    row = list(range(len(said) + 1))  # nothing heard yet: every said word dropped
    costs = [row[-1]]
    for word in heard:
        if word:
            new = [row[0] + 1]
            for j, s in enumerate(said, start=1):
                new.append(min(row[j] + 1, new[j - 1] + 1, row[j - 1] + _substitution(s, word)))
            row = new
        costs.append(row[-1])
    return costs


@functools.lru_cache(maxsize=4096)
def _substitution(a: str, b: str) -> int:
    if a == b:
        return 0
    # the same word heard a little differently (its first sound kept, at most half its
    # letters changed), or another word: as costly as one dropped and one added
    longest = max(len(a), len(b))
    if a[:1] != b[:1] or abs(len(a) - len(b)) * 2 > longest:
        return 2
    return 1 if word_distance(a, b) * 2 <= longest else 2


def same_words(a: str, b: str) -> bool:
    """Whether two transcripts say the same words (case and punctuation aside)."""
    return _norm(a) == _norm(b)


def _norm(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split() if text else []


def word_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance over words (or the characters of a word): the substitutions,
    insertions and deletions that make `a` into `b`."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]
