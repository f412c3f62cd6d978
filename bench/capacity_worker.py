"""The capacity benchmark's worker: `voice-agent start` with spoken sessions."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from livekit.agents import JobContext


async def spoken_session(ctx: JobContext) -> None:
    from testing.job_session import start_job_session

    spec = json.loads(os.environ["CAPACITY_SPEC"])
    marks, index = Path(spec["dir"]), int(ctx.job.id.rsplit("test", 1)[-1]) - 1
    job = await start_job_session(ctx)
    (marks / f"{ctx.job.id}.started").write_text(str(os.getpid()))
    try:
        while not (marks / "go").exists():  # noqa: ASYNC110  (a file from another process)
            await asyncio.sleep(0.05)
        await asyncio.sleep(spec["stagger"] * index / spec["sessions"])
        for _ in range(spec["turns"]):
            await job.ask(Path(spec["wav"]), within=60)
            await asyncio.sleep(spec["pause"])
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
