"""Whether the words before a pause can be a whole turn (the `transcript` turn detection).

A transcript that cannot be whole ("What is the capital of") makes livekit wait up to the
maximum endpointing delay for more speech; any other ends the turn after the minimum. A
wrong "whole" answers half a question; a wrong "not whole" costs the user the difference
(2.5 s by default) on a reply that was done, so the rules below are about the last word,
what comes before it, and the STT's punctuation:

- Some words never end an English sentence: articles, prepositions, conjunctions,
  possessives ("my", "their"). Whisper puts a stop or a question mark after speech cut
  off at a pause ("What is the capital of?", "Please set a timer for."), so these are
  open whatever the punctuation.
- Others often end a short reply: "Thank you.", "No.", "Yes, please.", "Why is that?",
  "Yes I do.". A sentence stop from the STT after them is evidence that the sentence
  ended, and is kept. Without one (Whisper leaves it off short clips: "Tell me more",
  "No") the words before decide: "Can you" is open, "Thank you" is not.
- Marks of speech cut off ("...", "on-", a trailing comma) are open.
- A hesitation ("um", "uh", "eh") last is someone thinking of their next words, however it
  is punctuated; Moonshine also writes a cut-off "a" so ("Can you tell me, eh?"), or as
  "hey" or "aye" ("Can you tell me aye?"). Those two also end real sentences ("It's cold
  today, hey?", "I think so, aye"), so they count as open only for an STT known to spell
  "a" so (`a_spelled_hey`: Moonshine, in the worker), and only after three words or more.
"""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_NEVER_LAST = _words(
    "a an the of in on at to for from with by about into onto over under than as "
    "and or but nor because if although unless whether "
    "my your our their its every just very it's let's "
    "um umm uh uhm er erm eh hmm"
)
_SAID_FOR_A = _words("hey aye ay")
"""Moonshine's cut-off "a" after three words or more (alone or after one: a greeting, a yes)."""
_COPULAS = _words("is are was were am")
_AUXILIARIES = _COPULAS | _words(
    "do does did have has had can could would should will shall may might must"
)
_SUBJECTS = _words("i we you they he she")
_PRONOUNS = _SUBJECTS | {"it"}
_REPLY_WORDS = _words("no please more most some any this these those")
"""Words that end a short reply whatever came before ("Yes, please", "Tell me more")."""
_OPEN_BEFORE_YOU = (_AUXILIARIES - _COPULAS) | _words(
    "if when while because that unless whether so let"
)
"""After these, a final "you" is a subject still waiting for its verb ("Can you")."""
_CLAUSE_BEFORE_THAT = _words(
    "think know knew said say says believe hope guess mean feel heard sure true so such "
    "one thing things something anything everything fact way glad"
)
"""After these, a final "that" opens a clause ("I think that")."""
_BEFORE_FINAL_SO = _words("think hope guess believe suppose said say told that even why")
"""After these, "so" ends the sentence ("I think so")."""
_WEAK = (
    _words("so when while that which who whose where his her be been please more most")
    | _AUXILIARIES
    | _SUBJECTS
    | _REPLY_WORDS
)
"""Words that end a sentence only sometimes: the punctuation, or the words before, decide."""

_CLOSING = "\"'”’)]"
_CUT_OFF = ("...", "…", "-", "—", ",", ":", ";")
_STOPS = (".", "?", "!")


def transcript_is_open(text: str, *, a_spelled_hey: bool = False) -> bool:
    """True when the transcript so far cannot be a whole turn (see the module docstring).
    `a_spelled_hey`: the STT writes a cut-off "a" as "hey" or "aye" (Moonshine)."""
    text = text.strip().rstrip(_CLOSING)
    if text.endswith(_CUT_OFF):
        return True
    words = [w for w in (w.strip(".,!?;:" + _CLOSING).lower() for w in text.split()) if w]
    if not words:
        return True
    if words[-1] in _NEVER_LAST or (a_spelled_hey and words[-1] in _SAID_FOR_A and len(words) > 3):
        return True
    if words[-1] not in _WEAK or text.endswith(_STOPS):
        return False
    return not _ends_a_reply(words)


def _ends_a_reply(words: list[str]) -> bool:
    """Whether a transcript with no sentence stop that ends on a `_WEAK` word is whole."""
    last = words[-1]
    before = words[-2] if len(words) > 1 else None
    if last in _REPLY_WORDS:
        return True
    if last == "that":
        return before not in _CLAUSE_BEFORE_THAT
    if last == "so":
        return before in _BEFORE_FINAL_SO
    if last in _SUBJECTS:
        if before in _COPULAS:
            return len(words) > 2  # "How are you", not "Are you" (waiting for more)
        # a lone "you" is also what Whisper makes of a cough or a breath
        return last == "you" and before is not None and before not in _OPEN_BEFORE_YOU
    if last in _AUXILIARIES:
        return before in _PRONOUNS  # "Yes I do", "Sure, I can"; not "What time is"
    return False
