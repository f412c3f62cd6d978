"""The voice worker, run by livekit's CLI like `voice-agent start`, with sessions a test
can hold open and speak into, since no LiveKit room exists here.

`python -m tests.voice.held_jobs` builds the worker with `agent.worker.build_server` and
runs it through `agent.cli.run_worker` (livekit's CLI: registration, job processes,
SIGTERM drain). Each job runs a real session of ours (`build_session`, `build_agent`,
`observe_session`) with the paced microphone and the recording speaker instead of a
room; it says `HELD_JOB_WAV` if set, stays open for `HELD_JOB_SECONDS`, then ends. It
writes `<job id>.started` / `<job id>.finished` into `HELD_JOB_DIR`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from livekit.agents import JobContext, llm
from livekit.agents.voice import ConversationItemAddedEvent

from agent.resolved import Config
from testing.audio_io import PacedMicrophone, RecordingSpeaker


async def held_session(ctx: JobContext) -> None:
    from agent.observability import observe_session
    from agent.wiring import build_agent, build_llm, build_session

    config: Config = ctx.proc.userdata["config"]
    settings = config.settings
    marks = Path(os.environ["HELD_JOB_DIR"])
    session = build_session(config, vad=ctx.proc.userdata["vad"])
    turn_llm = build_llm(config)
    ctx.add_shutdown_callback(turn_llm.aclose)
    agent = build_agent(config, turn_llm=turn_llm)
    observe_session(
        session, agent.engine, settings=settings, add_shutdown_callback=ctx.add_shutdown_callback
    )
    answers: list[str] = []

    def on_item(ev: ConversationItemAddedEvent) -> None:
        if isinstance(ev.item, llm.ChatMessage) and ev.item.role == "assistant":
            answers.append(ev.item.text_content or "")

    session.on("conversation_item_added", on_item)
    mic = PacedMicrophone()
    session.input.audio = mic
    session.output.audio = RecordingSpeaker()
    await session.start(agent)
    (marks / f"{ctx.job.id}.started").touch()
    try:
        if wav := os.environ.get("HELD_JOB_WAV"):
            await mic.say(Path(wav))
            deadline = time.monotonic() + 90
            while not answers or session.agent_state != "listening":
                if time.monotonic() > deadline:
                    raise TimeoutError("no spoken answer within 90 s")
                await asyncio.sleep(0.05)
        await asyncio.sleep(float(os.environ.get("HELD_JOB_SECONDS", "0")))
    finally:
        await session.aclose()
    (marks / f"{ctx.job.id}.finished").touch()
    ctx.shutdown("session over")


def main() -> int:
    from agent.cli import run_livekit

    return run_livekit("start", sys.argv[1:], session_entrypoint=held_session)


if __name__ == "__main__":
    sys.exit(main())
