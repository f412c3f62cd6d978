"""How a spoken turn ends: the VAD, end-of-turn detection, endpointing, preemptive generation.

`TURN_DETECTION` picks one of four:
- `transcript` (default): the STT runs at each pause (agent/voice/pause_stt.py, VAD window 0.2 s),
  so the words before a pause are known while the user is still pausing. A transcript that
  cannot be a whole turn ("what is the capital of", or Whisper's "capital on-") makes
  livekit wait up to the maximum endpointing delay for more speech; otherwise the turn ends
  after the minimum delay ("Thank you.", "No": agent/voice/transcript_ends.py). This uses
  livekit's text end-of-turn hook (`_TurnDetector`).
- `model`: livekit's own end-of-turn audio model (`turn-detector-v1-mini`,
  `livekit.agents.inference.TurnDetector`). Its weights ship inside the
  `livekit-local-inference` wheel livekit-agents depends on; it runs in-process on the CPU
  (30-80 ms a prediction on 1.2 s of audio), nothing is downloaded. livekit asks it once,
  after 0.2 s of silence (VAD window 0.25 s, its minimum). On espeak-ng speech it cannot
  tell a pause from an end at that point (both score 0.1-0.3 against its 0.36 threshold for
  English; they only part after 0.5 s of silence), so on the bench every turn waits for
  the maximum delay; with natural speech it hears the intonation it was trained on.
- `smart-turn`: `transcript`, and Smart Turn v3.2 (`providers.smart_turn`) on the turn's
  audio (agent/voice/turn_audio.py): a pause ends the turn when the audio model hears the
  end of a turn and the transcript can be a whole one. Each rule catches what the other
  cannot: "book a table" (a pause before "for two people") reads as whole but sounds
  unfinished; "what is the capital of" can sound finished in a flat voice, but no
  sentence ends so. The model runs on a thread of its own, ~35-50 ms per call.
- `vad`: silence alone (silero's 0.55 s window, then the endpointing delay).

Preemptive generation is livekit's: the reply starts on the transcript before the end of
the turn is confirmed, and is spoken only once it is (`agent/preemptive.py` keeps tools
with side effects from running on such a guess).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from livekit.agents import llm
from livekit.agents.voice.turn import TurnDetectionMode, TurnHandlingOptions

from agent.config.settings import MODEL_MIN_SILENCE, Settings
from agent.voice.pause_stt import PauseTranscriber
from agent.voice.transcript_ends import transcript_is_open
from agent.voice.turn_audio import TurnAudio
from providers.smart_turn import FINISHED, SMART_TURN_FILE, shared_smart_turn

if TYPE_CHECKING:
    from livekit.agents.vad import VAD

SILERO_DEFAULT_SILENCE = 0.55
"""silero's own `min_silence_duration` (what `VAD.load()` uses when given nothing)."""
SETTLE_TIMEOUT = 15.0
"""The longest the end of a turn waits for transcripts still being made."""
SETTLE_GRACE = 1.0
"""After those arrive, how long livekit has to take the newest in (and ask again)."""
TRANSCRIPT_SILENCE = 0.2
"""With `transcript`, a pause this long sends the speech before it to the STT; the
endpointing delay (from the end of speech) still keeps a turn from ending sooner."""


def vad_min_silence(settings: Settings) -> float:
    if settings.vad_min_silence is not None:
        return settings.vad_min_silence
    return {
        "vad": SILERO_DEFAULT_SILENCE,
        "model": MODEL_MIN_SILENCE,
        "transcript": TRANSCRIPT_SILENCE,
        "smart-turn": TRANSCRIPT_SILENCE,
    }[settings.turn_detection]


def load_vad(settings: Settings) -> VAD:
    """The silero VAD with the silence window the turn detection needs (the ONNX model
    ships inside the plugin wheel: nothing is downloaded)."""
    from livekit.plugins import silero

    return silero.VAD.load(min_silence_duration=vad_min_silence(settings))


def smart_turn_path(settings: Settings) -> Path:
    return settings.model_cache_dir / SMART_TURN_FILE


def prewarm_turn_detection(settings: Settings) -> None:
    """Load the end-of-turn model once per job process, before the first session."""
    if settings.turn_detection == "model":
        from livekit.local_inference import init_eot

        init_eot()
    elif settings.turn_detection == "smart-turn":
        shared_smart_turn(smart_turn_path(settings))


class TranscriptTurnDetector:
    """livekit's text end-of-turn hook (`_TurnDetector`): asked once the transcript of the
    speech before a pause is in (the STT runs at each pause), it says the user is only
    pausing when that transcript cannot be a whole turn; livekit then waits up to the
    maximum endpointing delay for more speech instead of the minimum.

    livekit asks when the VAD reports the end of speech, with the transcript it has; the
    last segment's may still be on its way (a slow STT). `settled` waits for it: if it
    brought words, the answer is "not yet", and livekit asks again with them, so a turn
    never ends on the words before the pause while the words after it are being heard; if
    it brought none (a cough), the words there are decide at once. While `holding` (words
    the STT holds back because they cannot end a turn), the words livekit has are not the
    whole turn: "not yet" as well.
    """

    def __init__(
        self,
        settled: Callable[[], Awaitable[bool]] | None = None,
        holding: Callable[[], bool] | None = None,
        *,
        a_spelled_hey: bool = False,
    ) -> None:
        self._settled = settled
        self._holding = holding
        self._a_spelled_hey = a_spelled_hey
        """The STT writes a cut-off "a" as "hey" or "aye" (Moonshine: `transcript_ends`)."""

    @property
    def model(self) -> str:
        return "transcript-open-end"

    @property
    def provider(self) -> str:
        return "voice-agent"

    async def unlikely_threshold(self, language: object) -> float | None:
        return 0.5

    async def supports_language(self, language: object) -> bool:
        return True

    async def predict_end_of_turn(
        self,
        chat_ctx: llm.ChatContext,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - livekit's signature
    ) -> float:
        if self._settled is not None:
            try:
                async with asyncio.timeout(SETTLE_TIMEOUT):
                    if await self._settled():
                        # a newer transcript is on its way: livekit asks again when it has
                        # it, cancelling this question; until then (the wait may have used
                        # up the endpointing delay) this answer must not end the turn
                        await asyncio.sleep(SETTLE_GRACE)
                        return 0.0
            except TimeoutError:
                pass  # the STT is stuck: judge the words there are
        if self._holding is not None and self._holding():
            return 0.0  # given once no speech follows: livekit asks again then
        user = next(
            (
                m
                for m in reversed(chat_ctx.items)
                if isinstance(m, llm.ChatMessage) and m.role == "user"
            ),
            None,
        )
        text = (user and user.text_content) or ""
        return 0.0 if transcript_is_open(text, a_spelled_hey=self._a_spelled_hey) else 1.0


class SmartTurnDetector(TranscriptTurnDetector):
    """The transcript rule, then Smart Turn on the turn's audio: the turn ends only when
    the transcript can be whole and the audio model hears its end (probability > 0.5)."""

    def __init__(
        self,
        settled: Callable[[], Awaitable[bool]] | None,
        holding: Callable[[], bool] | None = None,
        *,
        audio: TurnAudio,
        model_path: Path,
        a_spelled_hey: bool = False,
    ) -> None:
        super().__init__(settled, holding, a_spelled_hey=a_spelled_hey)
        self._audio = audio
        self._model_path = model_path
        self.last_probability: float | None = None
        """The audio model's last answer (for logs and tests)."""

    @property
    def model(self) -> str:
        return "smart-turn-v3.2+transcript"

    async def predict_end_of_turn(
        self,
        chat_ctx: llm.ChatContext,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - livekit's signature
    ) -> float:
        if await super().predict_end_of_turn(chat_ctx, timeout=timeout) < 0.5:
            return 0.0  # more words are on their way, or these cannot end a turn
        samples = self._audio.samples()
        loop = asyncio.get_running_loop()
        model = await loop.run_in_executor(None, shared_smart_turn, self._model_path)
        p = await loop.run_in_executor(model.executor, model.probability, samples)
        self.last_probability = p
        if p > FINISHED:
            self._audio.close_turn()
        return p


def turn_detector(settings: Settings, stt_engine: object = None) -> TurnDetectionMode:
    if settings.turn_detection == "vad":
        return "vad"
    pauses = stt_engine if isinstance(stt_engine, PauseTranscriber) else None
    settled = pauses.settled if pauses is not None else None
    holding = pauses.holding if pauses is not None else None
    # the whole turn at each pause is for an STT in the worker: Moonshine's spelling of "a"
    a_spelled_hey = pauses is not None and pauses.whole_turn
    if settings.turn_detection == "transcript":
        return TranscriptTurnDetector(settled, holding, a_spelled_hey=a_spelled_hey)
    if settings.turn_detection == "smart-turn":
        if pauses is None or pauses.turn_audio is None:
            raise ValueError("smart-turn hears the turn through the STT at pauses: none given")
        return SmartTurnDetector(
            settled,
            holding,
            audio=pauses.turn_audio,
            model_path=smart_turn_path(settings),
            a_spelled_hey=a_spelled_hey,
        )
    from livekit.agents.inference import TurnDetector

    # "v1-mini" is the local model; "v1" would be LiveKit Cloud's
    return TurnDetector(version="v1-mini")


def turn_handling(settings: Settings, *, stt_engine: object = None) -> TurnHandlingOptions:
    """`stt_engine`: the session's STT (with `transcript`, the end of the turn waits for
    the transcripts a `PauseTranscriber` is still working on)."""
    return {
        "turn_detection": turn_detector(settings, stt_engine),
        # livekit starts llm_node on the transcript before the end of the turn is
        # confirmed and speaks it only once it is; our llm_node runs tools, so it holds
        # back every tool that is not read-only until then (agent/preemptive.py)
        "preemptive_generation": {
            "enabled": settings.preemptive_generation,
            # the reply's first audio is synthesized while the turn is being confirmed;
            # it is played only once it is, and thrown away if the user goes on
            "preemptive_tts": settings.preemptive_generation,
        },
        "endpointing": {
            "mode": "fixed",
            "min_delay": settings.endpointing_min_delay,
            "max_delay": settings.endpointing_max_delay,
        },
        "interruption": {
            "enabled": settings.allow_interruptions,
            # "adaptive" needs LiveKit Cloud inference; VAD-based barge-in runs anywhere
            "mode": "vad",
            "min_duration": settings.min_interruption_duration,
        },
    }
