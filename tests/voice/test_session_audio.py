"""A whole voice session without a LiveKit server: real speech in, real audio out.

The session is the worker's own (`build_session` + `Assistant`), with the real silero
VAD, a real Whisper STT server (faster-whisper-server, tiny.en, offline), an espeak-ng
TTS server and the scripted LLM server, all on 127.0.0.1. Only the room is replaced, by
a paced microphone and a recording speaker.
"""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import AgentSession, APIConnectOptions
from livekit.agents.voice import CloseEvent, UserStateChangedEvent

from agent.config.resolved import Config
from agent.config.schema import default_model_cache_dir
from agent.voice.observer import SessionObserver
from agent.voice.turn_detection import SmartTurnDetector, load_vad
from agent.wiring import build_agent, build_llm, build_session
from agent.worker.entrypoint import greet
from testing.audio_io import PacedMicrophone, RecordingSpeaker, espeak_to_wav, wav_frames
from testing.engine import IN_PROCESS, voice_config
from testing.polling import free_port, until
from testing.servers.openai_server import ScriptedLLMServer, text_reply
from testing.servers.switch_proxy import SwitchProxy
from testing.servers.tts_server import EspeakTTSServer
from testing.servers.whisper_server import WhisperServer
from testing.stt_doubles import TurnSTT, speech_end

pytestmark = pytest.mark.timeout(120)

GREETING = "Hello, ask me anything."
ANSWER = "It is nine in the evening in Tokyo."
STT_DOWN_REPLY = "Sorry, my ears are not working right now."
# the session's STT/TTS requests: fail fast, so the failure tests stay short
FAST_FAIL = APIConnectOptions(max_retry=0, retry_interval=0.1, timeout=5)


@dataclass
class Peers:
    """The session's backends, real and on 127.0.0.1, and the question it is asked."""

    llm: ScriptedLLMServer
    stt: WhisperServer
    tts: EspeakTTSServer
    vad: Any
    question_wav: Path

    def config(self, *, stt_url: str | None = None) -> Config:
        """The worker's config against these backends (`stt_url`: another STT's)."""
        return voice_config(
            self.llm,
            stt_url=stt_url or self.stt.base_url,
            tts_url=self.tts.base_url,
            agent_greeting=GREETING,
            agent_stt_error_reply=STT_DOWN_REPLY,
            builtin_tools=False,
        )


@pytest.fixture
def peers(
    llm_server: ScriptedLLMServer,
    whisper_server: WhisperServer,
    tts_server: EspeakTTSServer,
    silero_vad: Any,
    question_wav: Path,
) -> Peers:
    return Peers(llm_server, whisper_server, tts_server, silero_vad, question_wav)


@dataclass
class Running:
    session: AgentSession
    mic: PacedMicrophone
    speaker: RecordingSpeaker
    observer: SessionObserver
    user_states: list[UserStateChangedEvent]
    closed: list[CloseEvent]


@asynccontextmanager
async def running_session(
    config: Config, vad: Any, stt_engine: Any = None
) -> AsyncIterator[Running]:
    session = build_session(config, vad=vad, stt_engine=stt_engine, conn_options=FAST_FAIL)
    observer = SessionObserver(session, stt_error_reply=config.settings.agent_stt_error_reply)
    run = Running(session, PacedMicrophone(), RecordingSpeaker(), observer, [], [])
    session.on("user_state_changed", run.user_states.append)
    session.on("close", run.closed.append)
    session.input.audio = run.mic
    session.output.audio = run.speaker
    turn_llm = build_llm(config)
    await session.start(build_agent(config, turn_llm=turn_llm), record=False)
    try:
        yield run
    finally:
        await session.aclose()
        await turn_llm.aclose()
        # Collect the session's garbage here: a finalizer that logs a traceback while
        # another `ast.parse` is running trips CPython 3.11.7's AST recursion check
        # (gh-106905), and pytest parses modules lazily at the end of the run.
        gc.collect()


async def test_spoken_question_reaches_llm_and_spoken_answer_comes_out(peers: Peers) -> None:
    peers.llm.script(text_reply(ANSWER))
    async with running_session(peers.config(), peers.vad) as run:
        greet(run.session, GREETING)
        await until(lambda: len(run.speaker.completed) >= 1, within=20, what="the greeting")

        await run.mic.say(peers.question_wav)
        await until(lambda: len(run.speaker.completed) >= 2, within=60, what="the spoken answer")
        await until(lambda: run.observer.turn_latencies != [], within=10, what="turn metrics")

        # speech detected by the VAD
        assert any(ev.new_state == "speaking" for ev in run.user_states)
        # the Whisper transcript reached the LLM as the user's turn
        user_turns = [m for m in peers.llm.requests[-1].messages if m["role"] == "user"]
        heard = str(user_turns[-1]["content"]).lower()
        assert "time" in heard and "tokyo" in heard, heard
        # the greeting, then the LLM's reply, reached the TTS server (the first clause of
        # each in a request of its own: agent/tts_chunks.py)
        said = " ".join(peers.tts.texts)
        assert said.startswith(GREETING)
        assert ANSWER in said[len(GREETING) :]
        # and came out as audio
        greeting_audio, answer_audio = run.speaker.completed[:2]
        assert greeting_audio.duration > 0.5 and answer_audio.duration > 0.5
        assert not run.closed

        speech_end = run.mic.speech_ended_at[-1]
        reply_request = next(r for r in peers.tts.requests if ANSWER.split()[0] in r.text)
        eos_to_tts_request = reply_request.received_at - speech_end
        eos_to_audio = (answer_audio.first_frame_at or 0) - speech_end
        print(
            f"\nlatency (wall clock from the last speech frame; includes the WAV's 0.3 s "
            f"silence pad): end of speech -> first TTS request {eos_to_tts_request * 1000:.0f} ms, "
            f"-> first audio frame {eos_to_audio * 1000:.0f} ms"
        )
        print(f"livekit metrics: {run.observer.turn_latencies[-1]}")
        assert reply_request.received_at > speech_end  # the order; speed is bench's


async def test_session_survives_stt_down_and_says_it_cannot_hear(peers: Peers) -> None:
    closed_port_url = f"http://127.0.0.1:{free_port()}/v1"
    peers.llm.script(text_reply(ANSWER))
    async with running_session(peers.config(stt_url=closed_port_url), peers.vad) as run:
        await run.mic.say(peers.question_wav)
        await until(
            lambda: STT_DOWN_REPLY in " ".join(peers.tts.texts),
            within=30,
            what="the STT-down reply",
        )

        # still alive: a typed turn is answered and spoken
        run.session.generate_reply(user_input="Are you there?")
        await until(lambda: ANSWER in " ".join(peers.tts.texts), within=20, what="the answer")
        await until(lambda: len(run.speaker.completed) >= 2, within=20, what="audio")
        assert not run.closed
        assert any(
            m["role"] == "user" and "Are you there?" in str(m["content"])
            for m in peers.llm.requests[-1].messages
        )


async def test_session_survives_tts_down_and_speaks_again_when_it_returns(peers: Peers) -> None:
    peers.llm.script(text_reply(ANSWER), text_reply("Second answer."))
    peers.tts.fail_with = 503
    async with running_session(peers.config(), peers.vad) as run:
        greet(run.session, GREETING)  # fails: TTS is down
        await run.mic.say(peers.question_wav)
        # the turn still went through the LLM, and its reply was attempted on the TTS
        await until(lambda: len(peers.llm.requests) >= 1, within=60, what="the LLM request")
        # (its first clause: the request that failed, so the rest was never asked for)
        await until(
            lambda: any(t and ANSWER.startswith(t) for t in peers.tts.texts),
            within=30,
            what="a TTS attempt",
        )
        assert run.speaker.completed == []

        peers.tts.fail_with = None
        run.session.generate_reply(user_input="And now?")
        await until(lambda: len(run.speaker.completed) >= 1, within=30, what="audio after recovery")
        assert "Second answer." in peers.tts.texts[-1]
        assert not run.closed


async def test_speech_fallbacks_take_over_when_the_first_stt_and_tts_are_down(peers: Peers) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    peers.llm.script(text_reply(ANSWER))
    settings = voice_config(
        peers.llm,
        stt_url=dead,
        tts_url=dead,
        stt_fallbacks=[{"base_url": peers.stt.base_url, "model": "tiny.en"}],
        tts_fallbacks=[{"base_url": peers.tts.base_url, "model": "espeak", "voice": "en"}],
        builtin_tools=False,
    )
    async with running_session(settings, peers.vad) as run:
        # livekit's STT fallback does not replay the utterance the dead STT lost: the user
        # is asked to repeat, as with a dropped word on a phone line, and then heard
        switched: list[object] = []
        assert run.session.stt is not None
        run.session.stt.on("stt_availability_changed", switched.append)
        await run.mic.say(peers.question_wav)
        await until(lambda: bool(switched), within=30, what="the switch to the second STT")
        await run.mic.say(peers.question_wav)
        await until(lambda: ANSWER in " ".join(peers.tts.texts), within=60, what="the answer")
        await until(lambda: len(run.speaker.completed) >= 1, within=30, what="audio")
        # the fallback Whisper heard the question, the fallback TTS spoke the answer
        heard = str(peers.llm.requests[-1].messages[-1]["content"]).lower()
        assert "tokyo" in heard, heard
        assert run.speaker.completed[-1].duration > 0.5
        assert not run.closed


async def test_an_stt_outage_is_reported_again_after_a_recovery_and_a_second_outage(
    peers: Peers,
) -> None:
    peers.llm.script(text_reply(ANSWER))
    with SwitchProxy(peers.stt.base_url.removesuffix("/v1")) as stt:
        async with running_session(peers.config(stt_url=f"{stt.origin}/v1"), peers.vad) as run:

            def reported() -> int:
                # the reply's first clause goes to the TTS in a request of its own, and the
                # rest only once that is spoken: the user's speech can cut it off there (the
                # STT fails at a pause inside the question, while the user still talks)
                first_clause = STT_DOWN_REPLY.split(",")[0]
                return " ".join(peers.tts.texts).count(first_clause)

            def listening() -> bool:
                return run.session.agent_state == "listening"

            # first outage: said once
            stt.up = False
            await run.mic.say(peers.question_wav)
            await until(lambda: reported() == 1, within=60, what="the first STT-down reply")
            # the user speaks again once the agent has finished saying so: speech over the
            # agent's would interrupt it, which is not what is tested here
            await until(listening, within=60, what="the agent to finish speaking")

            # recovery: the user is heard and answered
            stt.up = True
            await run.mic.say(peers.question_wav)
            await until(lambda: ANSWER in " ".join(peers.tts.texts), within=60, what="the answer")
            await until(listening, within=60, what="the answer to be spoken")
            heard = [m for m in peers.llm.requests[-1].messages if m["role"] == "user"]
            assert "tokyo" in str(heard[-1]["content"]).lower()

            # second outage: said again
            stt.up = False
            await run.mic.say(peers.question_wav)
            await until(lambda: reported() == 2, within=60, what="the second STT-down reply")
            assert not run.closed
            # the reply about the outage is said, never put into the model's history
            peers.llm.script(text_reply(ANSWER))
            run.session.generate_reply(user_input="Are you there?")
            await until(lambda: len(peers.llm.requests) >= 2, within=30, what="a typed turn")
            assert STT_DOWN_REPLY not in str(peers.llm.requests[-1].messages)


async def test_with_only_an_llm_running_the_session_holds_a_spoken_conversation(
    llm_server: ScriptedLLMServer,
    tts_server: EspeakTTSServer,
    silero_vad: Any,
    tmp_path: Path,
) -> None:
    """The default STT runs in the worker (Moonshine): no STT server is started here. (The
    TTS is still a server, Kokoro by default: the espeak-ng one stands in for it.)"""
    questions = ["What time is it in Tokyo right now?", "How far away is the moon from the earth?"]
    answers = [ANSWER, "About three hundred and eighty thousand kilometres."]
    llm_server.script(*(text_reply(a) for a in answers))
    config = voice_config(
        llm_server,
        stt_url=IN_PROCESS,
        tts_url=tts_server.base_url,
        agent_greeting=GREETING,
        builtin_tools=False,
    )
    assert config.backends.stt_backends[0].options.location == "in-process (moonshine tiny-en)"
    async with running_session(config, silero_vad) as run:
        greet(run.session, GREETING)
        await until(lambda: len(run.speaker.completed) >= 1, within=20, what="the greeting")
        for i, question in enumerate(questions):
            await run.mic.say(espeak_to_wav(question, tmp_path / f"q{i}.wav"))
            await until(
                lambda i=i: len(run.speaker.completed) >= i + 2,  # type: ignore[misc]
                within=60,
                what=f"the spoken answer {i + 1}",
            )
        # each question, heard in the worker, reached the LLM as the user's turn
        users = [m for m in llm_server.requests[-1].messages if m["role"] == "user"]
        heard = [str(m["content"]).lower() for m in users]
        assert len(heard) == 2, heard
        assert "tokyo" in heard[0] and "moon" in heard[1], heard
        # both answers were spoken, after the greeting
        said = " ".join(tts_server.texts)
        assert said.startswith(GREETING)
        assert answers[0] in said and answers[1] in said
        assert all(s.duration > 0.5 for s in run.speaker.completed[:3])
        assert not run.closed


async def test_a_session_with_smart_turn_hears_the_turn_end_and_answers(
    llm_server: ScriptedLLMServer,
    tts_server: EspeakTTSServer,
    silero_vad: Any,
    tmp_path: Path,
) -> None:
    """TURN_DETECTION=smart-turn in the worker's session: the audio model is asked, on the
    audio the STT at pauses heard, and the turn ends on the question."""
    from providers.smart_turn import fetch_smart_turn

    cache = fetch_smart_turn(default_model_cache_dir(os.environ)).parent
    llm_server.script(text_reply(ANSWER))
    config = voice_config(
        llm_server,
        stt_url=IN_PROCESS,
        tts_url=tts_server.base_url,
        agent_greeting="",
        builtin_tools=False,
        turn_detection="smart-turn",
        model_cache_dir=cache,
    )
    async with running_session(config, silero_vad) as run:
        detector = run.session.options.turn_handling["turn_detection"]
        assert isinstance(detector, SmartTurnDetector)
        wav = espeak_to_wav("What time is it in Tokyo right now?", tmp_path / "q.wav")
        await run.mic.say(wav)
        await until(lambda: len(run.speaker.completed) >= 1, within=60, what="the answer")
        users = [m for m in llm_server.requests[-1].messages if m["role"] == "user"]
        assert "tokyo" in str(users[-1]["content"]).lower()
        assert detector.last_probability is not None  # the audio model was asked
        assert ANSWER in " ".join(tts_server.texts)


@pytest.mark.parametrize(
    "at_the_pause",
    [
        "What is the capital on?",  # cannot end a turn: held back, livekit gets the pass
        "What is the capitol?",  # can: given, then livekit holds "capitol? ... Australia?"
    ],
)
async def test_an_stt_in_the_worker_gives_the_llm_its_last_pass_over_the_whole_turn(
    llm_server: ScriptedLLMServer,
    tts_server: EspeakTTSServer,
    tmp_path: Path,
    at_the_pause: str,
) -> None:
    """At the pause the STT in the worker misheard the words so far; over the whole turn it
    heard the question right. livekit was given the pieces; the LLM gets the one pass, in
    the reply started before the turn was committed (preemptive), and in the next turn."""
    whole = "What is the capital of Australia?"
    # a pause shorter than the minimum endpointing delay (0.5 s): the turn goes on
    paused = 'What is the capital of <break time="350ms"/> Australia?'
    wav = espeak_to_wav(paused, tmp_path / "q.wav")
    cut = speech_end(wav_frames(wav)) - 0.5
    engine = TurnSTT(cut=cut, short=at_the_pause, long=whole)
    llm_server.script(text_reply(ANSWER))
    config = voice_config(
        llm_server,
        stt_url=IN_PROCESS,  # an STT in the worker: the whole turn at each pause
        tts_url=tts_server.base_url,
        agent_greeting="",
        builtin_tools=False,
    )
    # the worker's VAD (its 0.2 s window: the pause is one)
    async with running_session(config, load_vad(config.settings), stt_engine=engine) as run:
        await run.mic.say(wav)
        await until(lambda: len(run.speaker.completed) >= 1, within=60, what="the answer")
        assert len(engine.seconds) >= 2  # the pause was heard too
        # no request read the pieces livekit holds, and the preemptive reply was the one
        # said: none was made again at the commit
        read = [str(r.messages[-1]["content"]) for r in llm_server.requests]
        assert set(read) <= {at_the_pause, whole} and read.count(whole) == 1, read
        # the next turn's request reads the first one as that pass too
        await run.mic.say(espeak_to_wav("Thank you.", tmp_path / "thanks.wav"))
        await until(lambda: len(run.speaker.completed) >= 2, within=60, what="the next answer")
        users = [m for m in llm_server.requests[-1].messages if m["role"] == "user"]
        assert [str(m["content"]) for m in users] == [whole, at_the_pause]
