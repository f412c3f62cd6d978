"""The audio of the user's current turn, for an end-of-turn model that listens (Smart Turn).

Fed every VAD event the STT at pauses sees (agent/voice/pause_stt.py), it keeps what
pipecat's analyzer gives the same model: from half a second before the turn's first
speech to now, pauses included, at most the model's 8 s window. A turn ends for this
buffer when the detector says it did (`close_turn`) or after a silence longer than the
longest a turn can pause (the maximum endpointing delay): the next speech opens a new one.
"""

from __future__ import annotations

import numpy as np
from livekit import rtc
from livekit.agents.vad import VADEvent, VADEventType

PRE_SPEECH_SECONDS = 0.5
MAX_SECONDS = 8.0
SAMPLE_RATE = 16000


class TurnAudio:
    def __init__(self, *, turn_gap: float) -> None:
        self._turn_gap = turn_gap
        self._chunks: list[np.ndarray] = []
        self._samples = 0
        self._open = False
        self._in_speech = False
        self._silence = 0.0
        self._resampler: rtc.AudioResampler | None = None
        self._resampler_rate = 0

    def feed(self, ev: VADEvent) -> None:
        if ev.type == VADEventType.INFERENCE_DONE:
            for frame in ev.frames:
                self._append(frame)
            if not self._in_speech:
                self._silence += sum(f.duration for f in ev.frames)
            if not self._open:
                self._keep_last(PRE_SPEECH_SECONDS)
        elif ev.type == VADEventType.START_OF_SPEECH:
            if self._open and self._silence >= self._turn_gap:
                self._open = False  # a pause no turn lasts through: this speech is new
                self._keep_last(PRE_SPEECH_SECONDS + ev.speech_duration)
            self._open = self._in_speech = True
            self._silence = 0.0
        elif ev.type == VADEventType.END_OF_SPEECH:
            self._in_speech = False

    def close_turn(self) -> None:
        """The turn is over: the next speech starts a new one (what is kept until then is
        only the half second before it)."""
        self._open = False
        self._keep_last(PRE_SPEECH_SECONDS)

    def samples(self) -> np.ndarray:
        """The turn's audio so far, 16 kHz mono float32."""
        if not self._chunks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(self._chunks).astype(np.float32) / 32768.0

    def _append(self, frame: rtc.AudioFrame) -> None:
        if frame.samples_per_channel == 0:
            return
        pcm = np.frombuffer(bytes(frame.data), dtype=np.int16)
        if frame.num_channels > 1:
            pcm = pcm.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
        if frame.sample_rate != SAMPLE_RATE:
            if self._resampler is None or self._resampler_rate != frame.sample_rate:
                self._resampler = rtc.AudioResampler(frame.sample_rate, SAMPLE_RATE, num_channels=1)
                self._resampler_rate = frame.sample_rate
            mono = rtc.AudioFrame(
                pcm.tobytes(),
                sample_rate=frame.sample_rate,
                num_channels=1,
                samples_per_channel=pcm.size,
            )
            out = self._resampler.push(mono)
            pcm = np.concatenate(
                [np.frombuffer(bytes(f.data), dtype=np.int16) for f in out] or [pcm[:0]]
            )
        self._chunks.append(pcm)
        self._samples += pcm.size
        self._keep_last(MAX_SECONDS)

    def _keep_last(self, seconds: float) -> None:
        keep = int(seconds * SAMPLE_RATE)
        while self._chunks and self._samples - self._chunks[0].size >= keep:
            self._samples -= self._chunks.pop(0).size
        if self._samples > keep and self._chunks:
            cut = self._samples - keep
            self._chunks[0] = self._chunks[0][cut:]
            self._samples = keep
