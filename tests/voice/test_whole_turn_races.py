"""The whole-turn STT at pauses (agent/voice/whole_turn.py) when its passes, its held-back
words and livekit's commits cross: driven event by event, with a scripted VAD and an STT
whose answers the test releases."""

from __future__ import annotations

import asyncio
from typing import Any, Literal, cast

import pytest
from livekit import rtc
from livekit.agents import APIConnectOptions, llm, stt, utils
from livekit.agents.language import LanguageCode
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS
from livekit.agents.vad import VADEvent, VADEventType

from agent.voice import whole_turn
from agent.voice.pause_stt import PauseTranscriber
from agent.voice.turn_detection import TranscriptTurnDetector
from testing.audio_io import SAMPLE_RATE
from testing.polling import until
from testing.stt_doubles import vad_event

pytestmark = pytest.mark.timeout(60)

HOLD = 0.05
"""`HOLD_SECONDS` here; a test that waits for held words to come out sleeps `4 * HOLD`."""


class GatedSTT(stt.STT[Literal["never"]]):
    """Each request waits for the test to answer it (`requests[i].set_result(text)`)."""

    def __init__(self) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self.requests: list[asyncio.Future[str]] = []
        self.cancelled = 0

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: Any = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.SpeechEvent:
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.requests.append(answer)
        try:
            text = await answer
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(language=LanguageCode("en"), text=text)],
        )


class ScriptedVAD:
    """A VAD whose stream yields the events the test puts in `events` (None ends it)."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[VADEvent | None] = asyncio.Queue()
        self.asked = 0
        """Events asked for: each one before the last was handled."""
        self.sent = 0

    def stream(self) -> ScriptedVAD:
        return self

    def push_frame(self, frame: rtc.AudioFrame) -> None:
        pass

    def flush(self) -> None:
        pass

    def end_input(self) -> None:
        pass

    def __aiter__(self) -> ScriptedVAD:
        return self

    async def __anext__(self) -> VADEvent:
        self.asked += 1
        ev = await self.events.get()
        if ev is None:
            raise StopAsyncIteration
        return ev

    async def aclose(self) -> None:
        pass

    async def send(self, *events: VADEvent) -> None:
        """Each event, once the stream has taken in the one before it."""
        for ev in events:
            self.events.put_nowait(ev)
            self.sent += 1
            await until(lambda: self.asked > self.sent, within=10, what="event handled")


def _ev(kind: VADEventType, *, speech: float = 0.0, silence: float = 0.0) -> VADEvent:
    n = SAMPLE_RATE // 10
    frame = rtc.AudioFrame(
        b"\x01\x00" * n, sample_rate=SAMPLE_RATE, num_channels=1, samples_per_channel=n
    )
    frames = [frame] if kind == VADEventType.INFERENCE_DONE else []
    return vad_event(kind, frames, speech=speech, silence=silence)


SPEECH = (
    _ev(VADEventType.START_OF_SPEECH),
    _ev(VADEventType.INFERENCE_DONE, speech=0.1),
    _ev(VADEventType.END_OF_SPEECH),
)
"""A stretch of speech and the pause after it (the pause's pass is sent at its end)."""


class Session:
    def __init__(self) -> None:
        self.vad = ScriptedVAD()
        self.engine = GatedSTT()
        self.owner = PauseTranscriber(
            stt_engine=self.engine, vad=cast(Any, self.vad), whole_turn=True
        )
        self.stream = self.owner.stream()
        self.events: list[stt.SpeechEvent] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for ev in self.stream:
            self.events.append(ev)

    def of(self, kind: stt.SpeechEventType) -> list[str]:
        return [e.alternatives[0].text for e in self.events if e.type == kind]

    async def answer(self, i: int, text: str) -> None:
        await until(lambda: len(self.engine.requests) > i, within=10, what=f"request {i}")
        self.engine.requests[i].set_result(text)

    async def close(self) -> None:
        self.vad.events.put_nowait(None)
        self.stream.end_input()
        await self.stream.aclose()
        await utils.aio.cancel_and_wait(self._reader)


@pytest.fixture
async def session(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(whole_turn, "HOLD_SECONDS", HOLD)
    s = Session()
    yield s
    await s.close()


INTERIM = stt.SpeechEventType.INTERIM_TRANSCRIPT
FINAL = stt.SpeechEventType.FINAL_TRANSCRIPT


async def test_held_back_words_do_not_come_out_after_the_turn_is_committed(
    session: Session,
) -> None:
    await session.vad.send(*SPEECH)
    await session.answer(0, "What is the capital of")
    await until(lambda: bool(session.of(INTERIM)), within=10, what="interim transcript")
    session.owner.take_turn_transcript("")  # livekit committed the turn meanwhile
    await asyncio.sleep(4 * HOLD)  # longer than the hold
    # given now, they would open a new user turn of their own
    assert session.of(FINAL) == []


async def test_a_turn_with_words_held_back_is_not_settled(session: Session) -> None:
    await session.vad.send(*SPEECH)
    await session.answer(0, "Tell me. What is the capital of")
    await until(lambda: bool(session.of(INTERIM)), within=10, what="interim transcript")
    # livekit has only the words given before ("Tell me."): they read as a whole turn, but
    # the turn goes on in the words held back
    detector = TranscriptTurnDetector(session.owner.settled, session.owner.holding)
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="Tell me.")
    assert await detector.predict_end_of_turn(ctx) < 0.5
    session.owner.take_turn_transcript("Tell me.")
    assert await detector.predict_end_of_turn(ctx) >= 0.5


async def test_a_pass_in_flight_when_the_turn_is_committed_is_not_given_again(
    session: Session,
) -> None:
    await session.vad.send(*SPEECH)
    await until(lambda: len(session.engine.requests) == 1, within=10, what="request")
    session.owner.take_turn_transcript("What is the capital of Australia?")
    session.engine.requests[0].set_result("What is the capital of Australia?")
    # its turn was committed: its words would be a second question, the same one
    assert not await asyncio.wait_for(session.owner.settled(), 10)
    assert session.of(FINAL) == []


async def test_held_back_words_held_again_are_given_once(session: Session) -> None:
    await session.vad.send(*SPEECH, *SPEECH)  # two pauses: two passes waiting
    await session.answer(0, "What is the capital of")  # held back, the user silent
    await until(lambda: bool(session.of(INTERIM)), within=10, what="interim transcript")
    await session.answer(1, "")  # the second pause was a cough: held again
    await asyncio.sleep(4 * HOLD)  # longer than the hold
    assert session.of(FINAL) == ["What is the capital of"]


async def test_an_early_pass_the_user_spoke_over_is_cancelled(session: Session) -> None:
    await session.vad.send(
        _ev(VADEventType.START_OF_SPEECH),
        _ev(VADEventType.INFERENCE_DONE, speech=0.1),
        _ev(VADEventType.INFERENCE_DONE, silence=0.1),  # a word gap: the early pass goes
    )
    await until(lambda: len(session.engine.requests) == 1, within=10, what="early pass")
    await session.vad.send(_ev(VADEventType.INFERENCE_DONE, speech=0.1))  # the user went on
    # not left queued ahead of the real pause's pass (Moonshine runs one at a time)
    await until(lambda: session.engine.cancelled == 1, within=10, what="cancelled early pass")


async def test_speech_under_way_when_the_turn_is_committed_gets_a_pass_of_its_own(
    session: Session,
) -> None:
    await session.vad.send(
        _ev(VADEventType.START_OF_SPEECH),
        _ev(VADEventType.INFERENCE_DONE, speech=0.1),
        _ev(VADEventType.INFERENCE_DONE, silence=0.1),  # the early pass goes
    )
    await until(lambda: len(session.engine.requests) == 1, within=10, what="early pass")
    session.owner.take_turn_transcript("What is the capital of")  # committed meanwhile
    await session.vad.send(_ev(VADEventType.END_OF_SPEECH))
    # the early pass heard the committed turn: the speech that opens the next one is sent
    # again, alone
    await session.answer(1, "Australia")
    await until(lambda: bool(session.of(FINAL)), within=10, what="final transcript")
    assert session.of(FINAL) == ["Australia"]
