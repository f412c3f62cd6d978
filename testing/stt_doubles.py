"""Batch STT doubles for the STT at pauses (answers that depend on the audio sent), and the
VAD events the tests feed the code that listens to a VAD."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from livekit import rtc
from livekit.agents import APIConnectOptions, stt, utils
from livekit.agents.language import LanguageCode
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS
from livekit.agents.vad import VADEvent, VADEventType


class TurnSTT(stt.STT[Literal["never"]]):
    """Answers with `short` for audio under `cut` seconds and `long` beyond (the text
    `long` stands for the whole turn, `short` for its words before the pause); remembers
    how long each request's audio was."""

    def __init__(self, *, cut: float, short: str, long: str) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self.cut, self.short, self.long = cut, short, long
        self.seconds: list[float] = []

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: Any = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.SpeechEvent:
        seconds = utils.merge_frames(buffer).duration
        self.seconds.append(seconds)
        text = self.short if seconds < self.cut else self.long
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(language=LanguageCode("en"), text=text)],
        )


def speech_end(frames: list[rtc.AudioFrame]) -> float:
    """Seconds from the start to the end of the last frame with speech in it."""
    loud = [
        i
        for i, f in enumerate(frames)
        if np.abs(np.frombuffer(bytes(f.data), np.int16)).max() > 300
    ]
    return sum(f.duration for f in frames[: loud[-1] + 1])


def vad_event(
    kind: VADEventType,
    frames: list[rtc.AudioFrame] | None = None,
    *,
    speech: float = 0.0,
    silence: float = 0.0,
) -> VADEvent:
    """A VAD event carrying `frames`, with silero's running totals of speech and silence
    (`raw_accumulated_*`); what no test reads is zero."""
    return VADEvent(
        type=kind,
        samples_index=0,
        timestamp=0.0,
        speech_duration=0.0,
        silence_duration=0.0,
        frames=frames or [],
        raw_accumulated_speech=speech,
        raw_accumulated_silence=silence,
    )
