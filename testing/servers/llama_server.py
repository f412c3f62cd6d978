"""llama.cpp's own OpenAI-compatible server with a real small model, on 127.0.0.1.

`xllamacpp` (a prebuilt CPU wheel of llama.cpp) runs the server in a child process, so
its threads never compete with the test's event loop for the GIL, and closing the
child's stdin (or the test process dying) stops it. It serves the model from
`testing.real_model` with jinja chat templates on, a 4096-token context, greedy
sampling (temperature 0, fixed seed: the same prompt gets the same reply) and one slot.

Two templates matter to the tests:
- `OWN_TEMPLATE`: the one in the GGUF file. Under it the model writes a tool call as
  text, a ```json fence in its content, which the server passes through untouched.
- `TOOL_CALL_TEMPLATE` (testing/qwen-tool-calls.jinja, Qwen2.5's Hermes-style template):
  the model writes `<tool_call>{…}</tool_call>` and llama.cpp parses it into
  `tool_calls`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from testing.polling import free_port

OWN_TEMPLATE = None
TOOL_CALL_TEMPLATE = Path(__file__).resolve().parents[1] / "qwen-tool-calls.jinja"
MODEL_NAME = "qwen2.5-coder-1.5b-instruct"
SEED = 1234


def threads() -> int:
    """Threads for generation: REAL_LLM_THREADS, else all cores but one (capped at 8),
    so that on a 2-core machine the test process and its client keep a core."""
    if configured := os.environ.get("REAL_LLM_THREADS"):
        return max(1, int(configured))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, (cores or 1) - 1))


class LlamaServer:
    """`start()` it, point clients at `base_url`, `stop()` it."""

    def __init__(self, model: Path, *, chat_template: Path | None = OWN_TEMPLATE) -> None:
        self.model = model
        self.chat_template = chat_template
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  (closed in stop())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, *, timeout: float = 180) -> LlamaServer:
        args = [sys.executable, "-m", "testing.servers.llama_server", str(self.model)]
        args += ["--port", str(self.port), "--threads", str(threads())]
        if self.chat_template is not None:
            args += ["--chat-template-file", str(self.chat_template)]
        self._proc = subprocess.Popen(
            args,
            cwd=Path(__file__).resolve().parents[2],
            stdin=subprocess.PIPE,
            stdout=self._log,
            # a file, not a pipe: nobody reads a pipe during the run, and a full one blocks
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        # healthy while our child runs: a server another process started on the port in
        # the meantime (free_port() only found it free) answers too, but ours has exited
        while not (self._healthy() and self._proc.poll() is None):
            if self._proc.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"llama.cpp server exited: {tail}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"llama.cpp server not ready within {timeout:g} s")
            time.sleep(0.2)
        return self

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                return bool(r.status == 200)
        except (OSError, urllib.error.URLError):
            return False  # not listening yet, or 503 while the model loads

    def log_tail(self, chars: int = 2000) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-chars:]

    def stop(self, *, timeout: float = 20) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.stdin is not None:
                proc.stdin.close()  # the child's cue to stop its server and exit
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        self._log.close()

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serve(argv: list[str]) -> None:
    """The child: run the server until stdin closes."""
    import xllamacpp

    cli = argparse.ArgumentParser()
    cli.add_argument("model")
    cli.add_argument("--port", type=int, required=True)
    cli.add_argument("--threads", type=int, required=True)
    cli.add_argument("--chat-template-file", type=Path)
    opts = cli.parse_args(argv)

    params = xllamacpp.CommonParams()
    params.model.path = opts.model
    params.model_alias = MODEL_NAME
    params.hostnames = ["127.0.0.1"]
    params.port = opts.port
    params.n_ctx = 4096
    params.n_parallel = 1
    params.use_jinja = True
    params.warmup = False  # its first request is as fast; start-up is not
    if opts.chat_template_file is not None:
        params.chat_template = opts.chat_template_file.read_text()
    params.cpuparams.n_threads = opts.threads
    params.cpuparams_batch.n_threads = opts.threads
    # no busy-waiting between work: on a shared, busy machine spinning threads only
    # take the cores the other threads (and the test itself) need
    params.cpuparams.poll = 0
    params.cpuparams_batch.poll = 0
    params.sampling.temp = 0.0
    params.sampling.seed = SEED
    server = xllamacpp.Server(params)
    sys.stdin.buffer.read()  # until the parent closes it (or dies)
    del server  # stops the main loop and frees the model


if __name__ == "__main__":
    _serve(sys.argv[1:])
