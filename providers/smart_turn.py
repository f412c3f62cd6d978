"""Smart Turn v3.2: does the user's audio sound like the end of a turn?

The model (`smart-turn-v3.2-cpu.onnx`, 8.7 MB, BSD-2-Clause, by Daily) ships inside the
`pipecat-ai` 1.14.0 wheel. It is taken from the wheel on the package index, never from a
model hub, and without installing pipecat: `fetch_smart_turn` has pip download the wheel
and keeps the one file (checked against its SHA-256) in a cache directory
(`voice-agent download-files`; the image runs it at build time, so it starts offline).

The input is what pipecat's own analyzer (`LocalSmartTurnAnalyzerV3`) gives it: the last
8 s of the turn's audio at 16 kHz, padded with silence at the START when shorter (padding
at the end would put silence where the model looks for the end of speech, and everything
looks finished), normalised, as Whisper's log-mel features (80 bands x 800 frames). The
output is the probability that the turn is finished. One session per process, one thread.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

SMART_TURN_FILE = "smart-turn-v3.2-cpu.onnx"
SMART_TURN_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
SMART_TURN_WHEEL = "pipecat-ai==1.14.0"
SMART_TURN_MEMBER = f"pipecat/audio/turn/smart_turn/data/{SMART_TURN_FILE}"
SAMPLE_RATE = 16000
WINDOW_SECONDS = 8
FINISHED = 0.5
"""The probability above which pipecat calls the turn complete."""


class SmartTurnUnavailable(Exception):
    """The model file could not be fetched; the message is one line for the user."""


# --- the model file -------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def download_wheel(into: Path, *, python: str = sys.executable) -> Path:
    """`pipecat-ai`'s wheel in `into`, by pip (which honours PIP_INDEX_URL and the rest)."""
    cmd = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q"]
    proc = subprocess.run(
        [*cmd, "-d", str(into), SMART_TURN_WHEEL], capture_output=True, text=True, check=False
    )
    wheels = sorted(into.glob("pipecat_ai-*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise SmartTurnUnavailable(f"pip could not download {SMART_TURN_WHEEL}: {last}")
    return wheels[0]


def fetch_smart_turn(cache_dir: Path, *, python: str = sys.executable) -> Path:
    """The model file in `cache_dir`, downloaded first when it is not there (or not whole)."""
    target = cache_dir / SMART_TURN_FILE
    if target.is_file() and _sha256(target) == SMART_TURN_SHA256:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="smart-turn-") as tmp:
        wheel = download_wheel(Path(tmp), python=python)
        with zipfile.ZipFile(wheel) as zf:
            if SMART_TURN_MEMBER not in zf.namelist():
                raise SmartTurnUnavailable(f"{wheel.name} has no {SMART_TURN_MEMBER}")
            data = zf.read(SMART_TURN_MEMBER)
    if hashlib.sha256(data).hexdigest() != SMART_TURN_SHA256:
        raise SmartTurnUnavailable(
            f"{SMART_TURN_FILE} in {SMART_TURN_WHEEL} is not the one expected"
        )
    # written beside, then renamed: a worker never reads half a file
    partial = target.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(data)
    partial.replace(target)
    return target


# --- Whisper's log-mel features (transformers' WhisperFeatureExtractor, chunk 8 s) -----

_N_FFT = 400
_HOP = 160
_N_MELS = 80


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: linear to 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = 3.0 * hz / 200.0
    log = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) * (27.0 / np.log(6.4))
    return np.where(hz >= 1000.0, log, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = 200.0 * mel / 3.0
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log, linear)


def _mel_filters() -> np.ndarray:
    """(201 frequency bins, 80 bands): triangles evenly spaced in mels, area-normalised."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), _N_MELS + 2))
    bins = np.linspace(0, SAMPLE_RATE // 2, _N_FFT // 2 + 1)
    to_edge = edges[np.newaxis, :] - bins[:, np.newaxis]
    widths = np.diff(edges)
    rising = -to_edge[:, :-2] / widths[:-1]
    falling = to_edge[:, 2:] / widths[1:]
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    scaled: np.ndarray = triangles * (2.0 / (edges[2:] - edges[:-2]))[np.newaxis, :]
    return scaled


_MELS = _mel_filters()
_WINDOW = np.hanning(_N_FFT + 1)[:-1]  # periodic, as torch.hann_window


def last_window(samples: np.ndarray) -> np.ndarray:
    """The last 8 s of `samples`, padded with silence at the start when shorter."""
    n = SAMPLE_RATE * WINDOW_SECONDS
    samples = np.asarray(samples, dtype=np.float32)[-n:]
    return np.pad(samples, (n - samples.size, 0))


def whisper_features(window: np.ndarray) -> np.ndarray:
    """Log-mel features (80, 800) of an 8 s window, as Whisper's feature extractor makes
    them with `do_normalize=True`: normalised waveform, centred STFT (reflect padding),
    power spectrum, mel bands, log10 floored 8 below the loudest, scaled to about [-1, 1]."""
    x = np.asarray(window, dtype=np.float32)
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), _N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, _N_FFT)[::_HOP]
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=-1)) ** 2  # (801 frames, 201 bins)
    log_mel = np.log10(np.maximum(power @ _MELS, 1e-10)).T[:, :-1]  # the last frame is dropped
    log_mel = np.maximum(log_mel, log_mel.max() - 8.0)
    features: np.ndarray = ((log_mel + 4.0) / 4.0).astype(np.float32)
    return features


# --- the model ------------------------------------------------------------------------


class SmartTurn:
    """The ONNX session (one intra-op thread, as pipecat runs it) and its own thread."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session: Any = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smart-turn")

    def probability(self, samples: np.ndarray) -> float:
        """How likely the turn is finished, given its audio (16 kHz mono float32)."""
        features = whisper_features(last_window(samples))[np.newaxis]
        (out,) = self._session.run(None, {"input_features": features})
        return float(np.asarray(out).reshape(-1)[0])


_models: dict[tuple[int, Path], SmartTurn] = {}
_lock = threading.Lock()


def shared_smart_turn(path: Path) -> SmartTurn:
    """The process's model at `path`, loaded on first use (a forked child loads its own)."""
    key = (os.getpid(), path)
    with _lock:
        if key not in _models:
            _models[key] = SmartTurn(path)
        return _models[key]
