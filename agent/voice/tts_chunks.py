"""The reply's first words go to the TTS before its first sentence is complete.

A batch TTS is fed by livekit's `tts.StreamAdapter`, which sends it one sentence at a time
(blingfire's sentence tokenizer): the first request waits until the model has written the
whole first sentence. `ClauseFirstTokenizer` sends the first chunk of each reply at its
first clause boundary (`,` `;` `:` or a dash, then a space), or after `first_words` words
when there is none, and the rest in whole sentences (livekit's tokenizer), which a TTS
voices with better prosody.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from livekit.agents import tokenize, tts, utils
from livekit.agents.tokenize.tokenizer import SentenceStream, TokenData

# a clause ends at , ; : or a dash, followed by a space (not "3,5" or "10:30")
_CLAUSE_END = re.compile(r"[,;:\u2013\u2014](?=\s)|\s-(?=\s)")
# a sentence end in the head: then the head is a whole sentence anyway
_SENTENCE_END = re.compile(r"[.!?](?=\s)")
_WORD = re.compile(r"\S+\s")


def first_chunk_end(text: str, first_words: int) -> int | None:
    """Where the first chunk of `text` ends, or None while it has not ended yet.

    The first chunk ends at the first clause or sentence boundary, or after `first_words`
    complete words (a word is complete once a space follows it).
    """
    boundary = _CLAUSE_END.search(text) or _SENTENCE_END.search(text)
    by_words = None
    for n, word in enumerate(_WORD.finditer(text), start=1):
        if n == first_words:
            by_words = word.end()
            break
    ends = [e for e in (boundary.end() if boundary else None, by_words) if e is not None]
    return min(ends) if ends else None


class ClauseFirstTokenizer(tokenize.SentenceTokenizer):
    def __init__(self, *, first_words: int = 4, sentences: tokenize.SentenceTokenizer) -> None:
        self._first_words = first_words
        self._sentences = sentences

    def tokenize(self, text: str, *, language: str | None = None) -> list[str]:
        return self._sentences.tokenize(text, language=language)

    def stream(self, *, language: str | None = None) -> SentenceStream:
        return _ClauseFirstStream(self._sentences.stream(language=language), self._first_words)


class _ClauseFirstStream(SentenceStream):
    def __init__(self, sentences: SentenceStream, first_words: int) -> None:
        super().__init__()
        self._sentences = sentences
        self._first_words = first_words
        self._head: str | None = ""
        """Text of the first chunk so far; None once it has gone out."""
        self._segment_id = utils.shortuuid()
        self._forward_task = asyncio.create_task(self._forward())

    def push_text(self, text: str) -> None:
        self._check_not_closed()
        if self._head is None:
            self._sentences.push_text(text)
            return
        self._head += text
        end = first_chunk_end(self._head, self._first_words)
        if end is not None:
            head, rest = self._head[:end], self._head[end:]
            self._send_head(head)
            if rest:
                self._sentences.push_text(rest.lstrip())

    def flush(self) -> None:
        # only the reply's first chunk is short: going back to short chunks after a flush
        # could send one before the sentence stream has let out what it still holds
        if self._head:
            self._send_head(self._head)
        self._head = None
        self._sentences.flush()

    def end_input(self) -> None:
        if self._head:
            self._send_head(self._head)
        self._head = None
        self._sentences.end_input()

    async def aclose(self) -> None:
        await self._sentences.aclose()
        await utils.aio.cancel_and_wait(self._forward_task)
        self._do_close()

    def _send_head(self, head: str) -> None:
        self._head = None
        if head.strip():
            # the sentence stream holds no text yet, so this goes out first
            self._event_ch.send_nowait(TokenData(segment_id=self._segment_id, token=head.strip()))

    async def _forward(self) -> None:
        try:
            async for token in self._sentences:
                self._event_ch.send_nowait(token)
        finally:
            self._do_close()


def with_first_clause(engine: tts.TTS[Any], *, first_words: int) -> tts.TTS[Any]:
    """`engine` fed by `ClauseFirstTokenizer` (batch TTSs only; 0 words: livekit's default)."""
    if first_words <= 0 or engine.capabilities.streaming:
        return engine
    tokenizer = ClauseFirstTokenizer(
        first_words=first_words, sentences=tokenize.blingfire.SentenceTokenizer()
    )
    return tts.StreamAdapter(tts=engine, sentence_tokenizer=tokenizer)
