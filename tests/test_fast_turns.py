"""Fast spoken turns, piece by piece: tools held until the turn is confirmed, the reply's
first clause to the TTS, and audio cut into segments at pauses (no frame twice or lost)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import llm, tokenize
from livekit.agents.llm import function_tool
from livekit.agents.vad import VADEvent, VADEventType
from livekit.agents.voice import SpeechHandle
from livekit.agents.voice.agent_activity import _SpeechHandleContextVar

from agent.engine.turns import TurnEngine
from agent.tools import get_current_time
from agent.tools.read_only import mark_read_only
from agent.voice.pause_stt import Segmenter
from agent.voice.preemptive import SpeechConfirmationGate
from agent.voice.transcript_ends import transcript_is_open
from agent.voice.tts_chunks import ClauseFirstTokenizer, first_chunk_end
from agent.voice.turn_detection import TranscriptTurnDetector
from testing.engine import make_engine
from testing.servers.openai_server import ScriptedLLMServer, ToolCall, text_reply, tool_reply
from testing.stt_doubles import vad_event

pytestmark = pytest.mark.timeout(30)

# --- tools under preemptive generation --------------------------------------------------


class Lights:
    """A tool with a side effect, and a read-only one, that record when they ran."""

    def __init__(self) -> None:
        self.switched_at: list[float] = []
        self.read_at: list[float] = []

        @function_tool
        async def switch_on_lights(room: str) -> str:
            """Switch the lights on.

            Args:
                room: Which room.
            """
            self.switched_at.append(time.monotonic())
            return f"The {room} lights are on."

        @function_tool
        async def read_thermostat() -> str:
            """Read the temperature."""
            self.read_at.append(time.monotonic())
            return "21 degrees."

        self.switch = switch_on_lights
        self.read = mark_read_only(read_thermostat)


@pytest.fixture
def gated(llm_server: ScriptedLLMServer) -> Iterator[TurnEngine]:
    engine = make_engine(llm_server)
    engine.tool_gate = SpeechConfirmationGate()
    yield engine


def _ctx() -> llm.ChatContext:
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="Switch on the kitchen lights")
    return ctx


async def _run_for(speech: SpeechHandle, engine: TurnEngine, tools: list[llm.Tool]) -> str:
    """Run a turn the way livekit runs `llm_node`: in a task that sees its speech handle."""

    async def run() -> str:
        return "".join([t async for t in engine.run(_ctx(), tools)])

    token = _SpeechHandleContextVar.set(speech)
    try:
        task = asyncio.create_task(run())
    finally:
        _SpeechHandleContextVar.reset(token)
    return await task


async def _until(check: object, what: str, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"no {what} within {within} s"
        await asyncio.sleep(0.01)


def _both_tools() -> tuple[ToolCall, ToolCall]:
    return (
        ToolCall("switch_on_lights", {"room": "kitchen"}, id="c1", index=0),
        ToolCall("read_thermostat", {}, id="c2", index=1),
    )


async def test_side_effect_tool_never_runs_on_a_discarded_guess(
    gated: TurnEngine, llm_server: ScriptedLLMServer
) -> None:
    lights = Lights()
    tools = [lights.switch, lights.read]
    llm_server.script(tool_reply(*_both_tools()), tool_reply(*_both_tools()))
    llm_server.default = text_reply("The kitchen lights are on.")

    guess = SpeechHandle.create()  # preemptive: not scheduled yet
    attempt = asyncio.create_task(_run_for(guess, gated, tools))
    await _until(lambda: lights.read_at, "read-only tool run on the guess")
    await asyncio.sleep(0.3)  # the side-effect tool is held, not merely late
    assert lights.switched_at == []
    guess._cancel()  # the user went on: livekit discards the attempt
    with pytest.raises(asyncio.CancelledError):
        await attempt
    assert lights.switched_at == []

    confirmed = SpeechHandle.create()
    confirmed._mark_scheduled()  # the real turn: its speech is scheduled
    said = await _run_for(confirmed, gated, tools)
    assert said == "The kitchen lights are on."
    assert len(lights.switched_at) == 1  # once, for the confirmed turn only


async def test_side_effect_tool_runs_once_when_the_guess_is_confirmed(
    gated: TurnEngine, llm_server: ScriptedLLMServer
) -> None:
    lights = Lights()
    llm_server.script(tool_reply(*_both_tools()))
    llm_server.default = text_reply("Done.")

    guess = SpeechHandle.create()
    attempt = asyncio.create_task(_run_for(guess, gated, [lights.switch, lights.read]))
    await _until(lambda: lights.read_at, "read-only tool run on the guess")
    await asyncio.sleep(0.3)
    assert lights.switched_at == []
    confirmed_at = time.monotonic()
    guess._mark_scheduled()  # the end of the turn is confirmed: livekit schedules it
    assert await attempt == "Done."
    assert len(lights.switched_at) == 1
    assert lights.switched_at[0] >= confirmed_at
    assert lights.read_at[0] < confirmed_at


async def test_builtin_clock_runs_on_a_guess(
    gated: TurnEngine, llm_server: ScriptedLLMServer
) -> None:
    llm_server.script(tool_reply(ToolCall("get_current_time", {}, id="t1")))
    llm_server.default = text_reply("It is noon.")
    guess = SpeechHandle.create()
    # never scheduled: the clock is read-only, so the turn completes anyway
    assert await _run_for(guess, gated, [get_current_time]) == "It is noon."
    assert llm_server.requests[1].messages[-1]["role"] == "tool"


# --- the reply's first clause -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "end"),
    [
        ("It is nine", None),  # three words, no boundary yet
        ("It is nine in ", len("It is nine in ")),  # four complete words
        ("Sure, it is", len("Sure,")),  # a clause boundary first
        ("Yes. It is", len("Yes.")),
        ("At 10:30 it is here", len("At 10:30 it is ")),  # no clause inside a number
    ],
)
def test_first_chunk_end(text: str, end: int | None) -> None:
    assert first_chunk_end(text, 4) == end


async def test_first_clause_then_sentences() -> None:
    tokenizer = ClauseFirstTokenizer(
        first_words=4, sentences=tokenize.blingfire.SentenceTokenizer()
    )
    stream = tokenizer.stream()
    reply = "It is nine in the evening there right now. Is there anything else you would like?"
    first: str | None = None
    for word in reply.split(" "):
        stream.push_text(word + " ")
        if first is None:
            await asyncio.sleep(0)
            with contextlib.suppress(TimeoutError):
                first = (await asyncio.wait_for(stream.__anext__(), 0.01)).token
    stream.end_input()
    rest = [t.token async for t in stream]
    assert first == "It is nine in"  # out before the sentence was complete
    assert rest == ["the evening there right now.", "Is there anything else you would like?"]
    await stream.aclose()


# --- segments at pauses ----------------------------------------------------------------

RATE = 16000


def _frame(index: int, n: int = 512) -> rtc.AudioFrame:
    """A frame whose samples all equal `index`, so the frames can be told apart."""
    data = np.full(n, index, dtype=np.int16).tobytes()
    return rtc.AudioFrame(data, sample_rate=RATE, num_channels=1, samples_per_channel=n)


def _ev(kind: VADEventType, frames: list[rtc.AudioFrame] | None = None) -> VADEvent:
    return vad_event(kind, frames)


@pytest.mark.parametrize("with_context", [True, False], ids=["stitched", "each alone"])
def test_segments_partition_the_speech_and_start_with_silence(with_context: bool) -> None:
    """Speech 1..20, a pause 21..29, speech 30..50, silence: each speech frame lands in
    exactly one segment, and a segment's lead-in is only the pause that cut it. Stitched
    (a Whisper server), the second goes behind the first; each alone (Moonshine), never."""
    seg = Segmenter(lead_in=0.1, with_context=with_context)  # 0.1 s: 32 ms windows and a bit
    speech = {*range(1, 21), *range(30, 51)}
    timeline: list[tuple[int, VADEventType | None]] = []
    timeline += [(i, None) for i in range(-10, 1)]  # silence before
    timeline += [(1, VADEventType.START_OF_SPEECH)]
    timeline += [(i, None) for i in range(1, 29)]
    timeline += [(29, VADEventType.END_OF_SPEECH)]  # the pause closes segment 1
    timeline += [(30, VADEventType.START_OF_SPEECH)]
    timeline += [(i, None) for i in range(30, 60)]
    timeline += [(60, VADEventType.END_OF_SPEECH)]
    segments: list[list[int]] = []
    contexts: list[list[rtc.AudioFrame] | None] = []
    for index, kind in timeline:
        if kind is None:
            seg.feed(_ev(VADEventType.INFERENCE_DONE, [_frame(index)]))
        elif (cut := seg.feed(_ev(kind))) is not None:
            samples = np.frombuffer(b"".join(bytes(f.data) for f in cut.frames), dtype=np.int16)
            segments.append(sorted(set(samples.tolist())))
            contexts.append(cut.context)
    assert len(segments) == 2
    # the second, after a short pause, is sent behind the first one's audio (if stitched)
    assert contexts[0] is None
    assert (contexts[1] is not None) is with_context
    said = [set(s) & speech for s in segments]
    assert said[0] == set(range(1, 21))
    assert said[1] == set(range(30, 51))
    # the second segment opens with the end of the pause, never with the first's words
    assert min(segments[1]) > 20


def test_endless_speech_is_cut_into_bounded_segments_each_frame_in_one() -> None:
    """Ten minutes of speech without a pause (a TV), 48 kHz: the segmenter never holds
    more than `max_segment` seconds, cuts at the quietest frame of the last second, and
    every frame lands in exactly one segment, in order."""
    rate, n = 48000, 1536  # 32 ms frames, as silero hands them on at 48 kHz
    count = int(600 * rate / n)
    seg = Segmenter(lead_in=0.16, max_segment=15.0)
    seg.feed(_ev(VADEventType.START_OF_SPEECH))
    cuts: list[list[int]] = []
    most_held = 0.0
    for i in range(1, count + 1):
        samples = np.full(n, 1000 + i % 997, dtype=np.int16)
        if i % 25 == 0:
            samples[:] = 3  # a gap between words every 0.8 s
        samples[0] = i  # which frame this is
        frame = rtc.AudioFrame(
            samples.tobytes(), sample_rate=rate, num_channels=1, samples_per_channel=n
        )
        cut = seg.feed(_ev(VADEventType.INFERENCE_DONE, [frame]))
        most_held = max(most_held, seg.held)
        if cut is not None:
            assert cut.forced and cut.context is None
            cuts.append([_frame_id(f) for f in cut.frames])
            assert cuts[-1][-1] % 25 == 0  # cut at the quiet frame
    assert most_held <= 15.0 + n / rate
    assert len(cuts) >= 600 // 15 - 1
    assert all(len(frames) * n / rate <= 15.0 + n / rate for frames in cuts)
    # with what is still held, the cuts are every frame once, in order
    everything = [i for frames in cuts for i in frames] + [_frame_id(f) for f in seg.frames]
    assert everything == list(range(1, count + 1))


def _frame_id(frame: rtc.AudioFrame) -> int:
    return int(np.frombuffer(frame.data, dtype=np.int16)[0])


# --- the end of the turn from the transcript --------------------------------------------


@pytest.mark.parametrize(
    ("transcript", "pausing"),
    [
        ("What is the capital of", True),
        ("What is the capital on-", True),  # Whisper marks a cut-off word
        ("How is the weather in?", True),  # the question mark does not close "in"
        ("Can you tell me a", True),
        ("I would like to book a table,", True),
        ("Well...", True),
        ("", True),
        ("What is the capital of Australia?", False),
        ("Please set a timer for ten minutes.", False),
        ("Who wrote the novel Moby Dick", False),
        ("Thanks", False),
    ],
)
def test_transcript_is_open(transcript: str, pausing: bool) -> None:
    assert transcript_is_open(transcript) is pausing


async def test_transcript_turn_detector_reads_the_users_words() -> None:
    detector = TranscriptTurnDetector()
    ctx = llm.ChatContext()
    ctx.add_message(role="assistant", content="Hi! How can I help you?")
    ctx.add_message(role="user", content="What is the capital of")
    threshold = await detector.unlikely_threshold("en")
    assert threshold is not None
    assert await detector.predict_end_of_turn(ctx) < threshold  # wait for more
    ctx.add_message(role="user", content="Australia?")
    assert await detector.predict_end_of_turn(ctx) >= threshold  # done


async def test_transcript_turn_detector_waits_for_the_words_still_being_transcribed() -> None:
    transcribing = asyncio.Event()

    async def settled() -> bool:
        await transcribing.wait()
        return True

    detector = TranscriptTurnDetector(settled)
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="I would like to book a table")  # looks whole
    asking = asyncio.create_task(detector.predict_end_of_turn(ctx))
    await asyncio.sleep(0.1)
    assert not asking.done()  # the words after the pause are still with the STT
    transcribing.set()
    # not the end: livekit asks again with the newer transcript when it arrives
    assert await asking < (await detector.unlikely_threshold("en") or 0)
