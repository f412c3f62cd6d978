"""Short complete replies end the turn at the minimum endpointing delay; speech cut off at a
pause waits for more. On written transcripts (with and without the STT's punctuation), and
on what the real Whisper (tiny.en) makes of espeak-ng speech."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

import pytest
from livekit.agents import APIConnectOptions, llm, stt, utils
from livekit.agents.language import LanguageCode
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS

from agent.voice.pause_stt import PauseTranscriber
from agent.voice.transcript_ends import transcript_is_open
from agent.voice.turn_detection import TranscriptTurnDetector
from providers import STTOptions, build_stt
from testing.audio_io import SHORT_REPLIES, espeak_to_wav, wav_frames
from testing.servers.whisper_server import WhisperServer

WHOLE = [
    *SHORT_REPLIES,
    # as an STT without punctuation (or Whisper on a short clip) writes them
    *(r.rstrip(".?") for r in SHORT_REPLIES),
    "Yes, I do",
    "thank you",
    "And you?",
    "Nice to meet you",
    "I think so",
    "Is that so?",
    "Yes it is",
    "Where are they?",
    "Do you?",
    "What is this",
    "Thanks.",
    "Goodbye",
    "Hey!",
    "Oh, hey.",
    "Aye.",
    # a tag, a yes: from an STT that spells "a" as "a" (Whisper), these ended the sentence
    "It is cold today, hey?",
    "Tell me a joke, hey",
    "Thanks for that, hey!",
    "I think so, aye.",
    "All those in favour say aye.",
    "What is the capital of Australia?",
    "Who wrote the novel Moby Dick",
]

PAUSING = [
    # what Whisper writes for speech cut off at a pause
    "What is the capital of?",
    "How is the weather in?",
    "Please set a timer for.",
    "What time is it in?",
    "Can you tell me A?",
    "I want to...",
    "What is the capital on-",
    "I would like to book a table,",
    "Tell me about",
    # a hesitation: the speaker is thinking of the next words (Moonshine's cut-off "a" too)
    "Can you tell me, eh?",
    "I'd like, um",
    "The, uh...",
    "Book it for, hmm.",
    # a subject still waiting for its verb, a clause still waiting for its words
    "Can you",
    "What can you",
    "Are you",
    "Is he",
    "What is",
    "What time is",
    "How long does",
    "I think that",
    "So",
    "you",  # alone, also what Whisper makes of a breath
    "It's",
    "Let's",
    "Tell me about my",
    "and the",
    "Well...",
    "",
    "?",
]


@pytest.mark.parametrize("transcript", WHOLE)
async def test_a_whole_reply_ends_the_turn_at_the_short_delay(transcript: str) -> None:
    assert not transcript_is_open(transcript)
    assert await _end_of_turn(transcript) >= 0.5


@pytest.mark.parametrize("transcript", PAUSING)
async def test_speech_cut_off_at_a_pause_waits_for_more(transcript: str) -> None:
    assert transcript_is_open(transcript)
    assert await _end_of_turn(transcript) < 0.5


@pytest.mark.parametrize(
    ("transcript", "pausing"),
    [
        # Moonshine's cut-off "a" at a pause (4 of 48 bench questions in one run)
        ("Can you tell me, hey?", True),
        ("Can you tell me aye?", True),
        ("Can you tell me a", True),
        # a greeting, a yes: the turn
        ("Hey!", False),
        ("Oh, hey.", False),
        ("Aye.", False),
        ("Can you tell me a joke?", False),
    ],
)
async def test_with_moonshine_a_hey_after_three_words_is_a_cut_off_a(
    transcript: str, pausing: bool
) -> None:
    assert transcript_is_open(transcript, a_spelled_hey=True) is pausing
    ended = await _end_of_turn(transcript, TranscriptTurnDetector(a_spelled_hey=True))
    assert (ended < 0.5) is pausing


async def _end_of_turn(transcript: str, detector: TranscriptTurnDetector | None = None) -> float:
    detector = detector or TranscriptTurnDetector()
    assert await detector.unlikely_threshold("en") == 0.5
    ctx = llm.ChatContext()
    ctx.add_message(role="assistant", content="Hi! How can I help you?")
    ctx.add_message(role="user", content=transcript)
    return await detector.predict_end_of_turn(ctx)


CUT_OFF_SPEECH = (
    "What is the capital of",
    "How is the weather in",
    "Please set a timer for",
    "What time is it in",
    "Can you tell me a",
    "I want to",
    "Tell me about",
)
"""The first halves of questions, spoken and stopped (Whisper hears "Who wrote the" as "Who
wrote that?" and "How far away is the" as "How far away isn't it?": words no rule can
mend, left out)."""


@pytest.mark.timeout(300)
async def test_whisper_transcripts_of_short_replies_end_and_cut_off_speech_waits(
    whisper_server: WhisperServer, tmp_path: Path
) -> None:
    engine = build_stt(STTOptions(base_url=whisper_server.base_url, model="tiny.en"))
    patient = APIConnectOptions(max_retry=0, timeout=60)
    heard: dict[str, str] = {}
    for i, spoken in enumerate((*SHORT_REPLIES, *CUT_OFF_SPEECH)):
        audio = utils.merge_frames(wav_frames(espeak_to_wav(spoken, tmp_path / f"{i}.wav")))
        event = await engine.recognize(buffer=audio, conn_options=patient)
        heard[spoken] = event.alternatives[0].text
    await engine.aclose()
    wrong = [
        f"{spoken!r} heard as {text!r}"
        for spoken, text in heard.items()
        if transcript_is_open(text) is (spoken in SHORT_REPLIES)
    ]
    assert not wrong, "\n".join(wrong)


class ScriptedSTT(stt.STT[Literal["never"]]):
    """Answers each request with the next of `answers` (text, seconds it takes)."""

    def __init__(self, answers: list[tuple[str, float]]) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._answers = answers

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: Any = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.SpeechEvent:
        text, seconds = self._answers.pop(0)
        await asyncio.sleep(seconds)
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(language=LanguageCode("en"), text=text)],
        )


@pytest.mark.timeout(60)
async def test_a_cough_after_a_whole_sentence_does_not_hold_the_turn_open(
    tmp_path: Path,
) -> None:
    """The cough is a segment of its own whose transcript is empty: no newer words are
    coming, so the end of the turn is judged on the sentence, at once."""
    from livekit.plugins import silero

    question = "What time is it in Tokyo?"
    frames = [
        *wav_frames(espeak_to_wav(question, tmp_path / "q.wav"), trailing_silence=0.8),
        *wav_frames(espeak_to_wav("hm", tmp_path / "cough.wav"), trailing_silence=0.8),
    ]
    owner = PauseTranscriber(
        stt_engine=ScriptedSTT([(question, 0.0), ("", 1.0)]),
        vad=silero.VAD.load(min_silence_duration=0.2),
    )
    stream = owner.stream()
    for frame in frames:
        stream.push_frame(frame)
    stream.end_input()
    ends, finals = 0, []
    async for ev in stream:
        ends += ev.type == stt.SpeechEventType.END_OF_SPEECH
        if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
            finals.append(ev.alternatives[0].text)
        if ends == 2:  # the cough ended; its transcript is being made
            break
    assert ends == 2, "the VAD did not hear the cough as speech"
    assert finals == [question]  # the sentence's words are in; the cough's are not yet
    detector = TranscriptTurnDetector(owner.settled)
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content=question)
    assert await detector.predict_end_of_turn(ctx) >= 0.5
    await stream.aclose()
