"""The worker side of the capacity benchmark: `voice-agent start` with spoken sessions.

`python -m bench.capacity_worker` builds the worker with `agent.worker.entrypoint.build_server` and
runs it with livekit's CLI, so every session is a livekit job in its own job process,
forked from livekit's forkserver with the silero VAD prewarmed. A job runs the worker's
own session (`testing.job_session`: metrics included) with a paced microphone and a
recording speaker in place of the room, and:

1. touches `<dir>/<job>.started` (with its pid) and waits for `<dir>/go`;
2. waits its share of `CAPACITY_STAGGER` (sessions are independent calls, not a choir);
3. says `CAPACITY_WAV` `CAPACITY_TURNS` times, each time waiting for the answer and
   `CAPACITY_PAUSE` seconds after it;
4. writes livekit's end of speech -> first audio (`e2e_latency`) per turn to
   `<dir>/<job>.json` and ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from livekit.agents import JobContext


async def spoken_session(ctx: JobContext) -> None:
    from testing.job_session import start_job_session

    marks = Path(os.environ["CAPACITY_DIR"])
    index = int(ctx.job.id.rsplit("test", 1)[-1]) - 1
    sessions = int(os.environ["CAPACITY_SESSIONS"])
    job = await start_job_session(ctx)
    (marks / f"{ctx.job.id}.started").write_text(str(os.getpid()))
    try:
        go = marks / "go"
        while not go.exists():  # noqa: ASYNC110  (a file from another process)
            await asyncio.sleep(0.05)
        await asyncio.sleep(float(os.environ["CAPACITY_STAGGER"]) * index / sessions)
        wav = Path(os.environ["CAPACITY_WAV"])
        for _ in range(int(os.environ["CAPACITY_TURNS"])):
            await job.ask(wav, within=60)
            await asyncio.sleep(float(os.environ["CAPACITY_PAUSE"]))
    finally:
        await job.session.aclose()
        e2e = [answer.metrics.get("e2e_latency") for answer in job.answers]
        (marks / f"{ctx.job.id}.json").write_text(json.dumps({"e2e": e2e}))
    ctx.shutdown("benchmark session over")


def main() -> int:
    from agent.commands.cli import run_livekit

    return run_livekit("start", sys.argv[1:], session_entrypoint=spoken_session)


if __name__ == "__main__":
    sys.exit(main())
