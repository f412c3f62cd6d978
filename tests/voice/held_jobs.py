"""The voice worker, run by livekit's CLI like `voice-agent start`, with sessions a test
can hold open and speak into, since no LiveKit room exists here.

`python -m tests.voice.held_jobs` builds the worker with `agent.worker.entrypoint.build_server` and
runs it through `agent.commands.cli.run_worker` (livekit's CLI: registration, job processes,
SIGTERM drain). Each job runs a real session of ours (`testing.job_session`: the paced
microphone and the recording speaker instead of a room); it says `HELD_JOB_WAV` if set,
stays open for `HELD_JOB_SECONDS`, then ends. It writes `<job id>.started` /
`<job id>.finished` into `HELD_JOB_DIR`. While open, a file `<job id>.ask` there is taken
as the user's next turn in text (the file is removed) and `<job id>.answered` is written
once the answer was spoken.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from livekit.agents import JobContext

from testing.job_session import JobSession, start_job_session


async def held_session(ctx: JobContext) -> None:
    marks = Path(os.environ["HELD_JOB_DIR"])
    job = await start_job_session(ctx)
    (marks / f"{ctx.job.id}.started").touch()
    try:
        if wav := os.environ.get("HELD_JOB_WAV"):
            await job.ask(Path(wav), within=90)
        await _answer_asks(job, marks / ctx.job.id, float(os.environ.get("HELD_JOB_SECONDS", "0")))
    finally:
        await job.session.aclose()
    (marks / f"{ctx.job.id}.finished").touch()
    ctx.shutdown("session over")


async def _answer_asks(job: JobSession, marks: Path, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    ask, answered = marks.with_suffix(".ask"), marks.with_suffix(".answered")
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        if ask.exists():
            text = ask.read_text()
            ask.unlink()
            await job.ask_in_text(text, within=60)
            answered.touch()
        await asyncio.sleep(min(0.1, left))


def main() -> int:
    from agent.commands.cli import run_livekit

    return run_livekit("start", sys.argv[1:], session_entrypoint=held_session)


if __name__ == "__main__":
    sys.exit(main())
