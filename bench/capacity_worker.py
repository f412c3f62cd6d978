"""The worker side of the capacity benchmark: `voice-agent start` with spoken sessions.

`python -m bench.capacity_worker` builds the worker with `agent.worker.build_server` and
runs it with livekit's CLI, so every session is a livekit job in its own job process,
forked from livekit's forkserver with the silero VAD prewarmed. A job runs the worker's
own session (`build_session`, `build_agent`, `observe_session`: metrics included) with a
paced microphone and a recording speaker in place of the room, and:

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
import time
from pathlib import Path

from livekit.agents import JobContext, llm
from livekit.agents.voice import ConversationItemAddedEvent

from agent.resolved import Config


async def spoken_session(ctx: JobContext) -> None:
    from agent.observability import observe_session
    from agent.wiring import build_agent, build_llm, build_session
    from testing.audio_io import PacedMicrophone, RecordingSpeaker

    config: Config = ctx.proc.userdata["config"]
    settings = config.settings
    marks = Path(os.environ["CAPACITY_DIR"])
    index = int(ctx.job.id.rsplit("test", 1)[-1]) - 1
    sessions = int(os.environ["CAPACITY_SESSIONS"])
    session = build_session(config, vad=ctx.proc.userdata["vad"])
    turn_llm = build_llm(config)
    ctx.add_shutdown_callback(turn_llm.aclose)
    agent = build_agent(config, turn_llm=turn_llm)
    observe_session(
        session, agent.engine, settings=settings, add_shutdown_callback=ctx.add_shutdown_callback
    )
    e2e: list[float | None] = []

    def on_item(ev: ConversationItemAddedEvent) -> None:
        if isinstance(ev.item, llm.ChatMessage) and ev.item.role == "assistant":
            e2e.append(ev.item.metrics.get("e2e_latency"))

    session.on("conversation_item_added", on_item)
    mic = PacedMicrophone()
    session.input.audio = mic
    session.output.audio = RecordingSpeaker()
    await session.start(agent)
    (marks / f"{ctx.job.id}.started").write_text(str(os.getpid()))
    try:
        go = marks / "go"
        while not go.exists():  # noqa: ASYNC110  (a file from another process)
            await asyncio.sleep(0.05)
        await asyncio.sleep(float(os.environ["CAPACITY_STAGGER"]) * index / sessions)
        wav = Path(os.environ["CAPACITY_WAV"])
        for turn in range(int(os.environ["CAPACITY_TURNS"])):
            await mic.say(wav)
            deadline = time.monotonic() + 60
            while len(e2e) <= turn or session.agent_state != "listening":
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no answer to turn {turn} within 60 s")
                await asyncio.sleep(0.02)
            await asyncio.sleep(float(os.environ["CAPACITY_PAUSE"]))
    finally:
        await session.aclose()
        (marks / f"{ctx.job.id}.json").write_text(json.dumps({"e2e": e2e}))
    ctx.shutdown("benchmark session over")


def main() -> int:
    from agent.cli import run_livekit

    return run_livekit("start", sys.argv[1:], session_entrypoint=spoken_session)


if __name__ == "__main__":
    sys.exit(main())
