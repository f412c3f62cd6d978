"""Speech recognition inside the worker: Moonshine's English model, no server.

`moonshine-voice` 0.1.0 ships its tiny English model (MIT, ~43 MB of ONNX weights) and its
own ONNX Runtime inside the wheel; later releases download their models at run time, so
the version is pinned. This is a batch STT (one call per stretch of speech): the session
streams it at each pause (agent/voice/pause_stt.py), which on 2 CPUs beats the library's
own streaming mode, which transcribes the whole line again for every partial result.

One model per process, loaded once (`prewarm`) and shared by every session of the
process; its calls run one at a time on a thread of its own, off the event loop, so a
session's audio and timers keep running while it transcribes, and a process never runs
more inferences at once than it has a thread for.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import APIConnectOptions, APIError, APITimeoutError, stt, utils
from livekit.agents.language import LanguageCode
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr

SAMPLE_RATE = 16000
MOONSHINE_MODELS = ("tiny-en",)
"""The models the pinned wheel carries (its `assets/`)."""
MOONSHINE_LANGUAGES = ("en",)
SILENCE_PEAK = 1e-3
"""Audio that never rises above this (-60 dBFS) is silence: nothing is transcribed."""
_ONE_UTTERANCE = {"vad_threshold": "0"}
TRAILING_SILENCE = 0.4
"""Seconds of silence put after the audio of each request. STT at pauses sends speech cut
60 ms after it ends, and tiny-en hears a clip that stops that close to its last word less
well: over 93 espeak-ng questions (three voices) cut that way, word error rate 0.189 as
sent, 0.168 with this much silence after it, at the same cost per call (130-140 ms)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbeddedSTTOptions:
    """An STT that runs in the worker process (no URL, no key)."""

    engine: str = "moonshine"
    model: str = "tiny-en"
    language: str = "en"

    @property
    def location(self) -> str:
        """Where it runs, for `check` and the logs (a server's would be its URL)."""
        return f"in-process ({self.engine} {self.model})"


class _Model:
    """A loaded transcriber and the one thread its calls run on."""

    def __init__(self, model: str) -> None:
        from moonshine_voice import ModelArch, Transcriber, get_model_path

        path = get_model_path(model)
        if not (path / "encoder_model.ort").is_file():
            raise FileNotFoundError(f"moonshine-voice has no bundled model {model!r} at {path}")
        # the session's VAD has already cut the audio into a stretch of speech: the
        # library's own VAD would cut it again at every pause inside it, and each piece
        # would be transcribed without the words around it ("Who wrote her? No more")
        self.transcriber = Transcriber(str(path), ModelArch.TINY, options=_ONE_UTTERANCE)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"moonshine-{model}")

    def transcribe(self, samples: np.ndarray) -> str:
        if samples.size == 0 or float(np.abs(samples).max()) < SILENCE_PEAK:
            return ""  # without its VAD the model hears "You" in silence
        transcript = self.transcriber.transcribe_without_streaming(samples.tolist(), SAMPLE_RATE)
        return " ".join(t for line in transcript.lines if (t := line.text.strip()))


_models: dict[tuple[int, str], _Model] = {}
_models_lock = threading.Lock()


def shared_model(model: str) -> _Model:
    """The process's `model`, loaded on first use (about half a second). Keyed by process:
    a forked child loads its own (its parent's threads do not survive the fork)."""
    key = (os.getpid(), model)
    with _models_lock:
        if key not in _models:
            _models[key] = _Model(model)
        return _models[key]


def to_samples(frames: Sequence[rtc.AudioFrame] | rtc.AudioFrame) -> np.ndarray:
    """Mono float32 samples at 16 kHz in [-1, 1], whatever the frames' rate and channels."""
    frame = utils.merge_frames(list(frames) if isinstance(frames, Sequence) else [frames])
    if frame.samples_per_channel == 0:
        return np.zeros(0, dtype=np.float32)
    pcm = np.frombuffer(bytes(frame.data), dtype=np.int16)
    if frame.num_channels > 1:
        pcm = pcm.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
    if frame.sample_rate != SAMPLE_RATE:
        resampler = rtc.AudioResampler(frame.sample_rate, SAMPLE_RATE, num_channels=1)
        mono = rtc.AudioFrame(
            pcm.tobytes(),
            sample_rate=frame.sample_rate,
            num_channels=1,
            samples_per_channel=len(pcm),
        )
        out = [*resampler.push(mono), *resampler.flush()]
        pcm = np.concatenate(
            [np.frombuffer(bytes(f.data), dtype=np.int16) for f in out] or [pcm[:0]]
        )
    return pcm.astype(np.float32) / 32768.0


class MoonshineSTT(stt.STT[Any]):
    """livekit's batch `stt.STT` over the process's shared Moonshine model."""

    def __init__(self, *, options: EmbeddedSTTOptions | None = None) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._opts = options or EmbeddedSTTOptions()

    @property
    def model(self) -> str:
        return self._opts.model

    @property
    def provider(self) -> str:
        return self._opts.engine

    def prewarm(self) -> None:
        shared_model(self._opts.model)

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.SpeechEvent:
        samples = to_samples(buffer)
        if len(samples):
            samples = np.concatenate(
                [samples, np.zeros(int(SAMPLE_RATE * TRAILING_SILENCE), np.float32)]
            )
        loop = asyncio.get_running_loop()
        try:
            # loading (first call only) and inference both happen off the event loop
            model = await loop.run_in_executor(None, shared_model, self._opts.model)
            call = loop.run_in_executor(model.executor, model.transcribe, samples)
            text = await asyncio.wait_for(call, conn_options.timeout)
        except TimeoutError:
            # its thread is still busy with this audio: a retry would queue behind it
            raise APITimeoutError(
                f"moonshine: no transcript within {conn_options.timeout} s", retryable=False
            ) from None
        except Exception as e:
            # a model that cannot load or run will not do better on a retry
            raise APIError(f"moonshine: {type(e).__name__}: {e}", retryable=False) from e
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(language=LanguageCode(self._opts.language), text=text)],
        )
