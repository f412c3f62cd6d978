"""The worker's own session in a livekit job, with no LiveKit room to hear or speak in.

A job started by livekit's CLI (the worker as `voice-agent start` runs it) builds the
session as `agent.worker.entrypoint` does (`build_session`, `build_agent`,
`observe_session`: metrics included), with the paced microphone and the recording speaker in
place of the room. The held-jobs worker of the tests and the capacity benchmark's worker
both run their jobs so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livekit.agents import JobContext, llm
from livekit.agents.voice import AgentSession, ConversationItemAddedEvent

from .audio_io import PacedMicrophone, RecordingSpeaker
from .polling import until


@dataclass
class JobSession:
    session: AgentSession[Any]
    mic: PacedMicrophone
    answers: list[llm.ChatMessage] = field(default_factory=list)
    """The agent's messages, in order."""

    async def ask(self, wav: Path, *, within: float) -> None:
        """Say `wav` and wait for the answer to be spoken to its end."""
        answered = len(self.answers)
        await self.mic.say(wav)
        await until(
            lambda: len(self.answers) > answered and self.session.agent_state == "listening",
            within=within,
            what="spoken answer",
        )

    async def ask_in_text(self, text: str, *, within: float) -> None:
        """`text` as the user's turn (no speech recognition), and wait for the answer to be
        spoken to its end."""
        answered = len(self.answers)
        self.session.generate_reply(user_input=text)
        await until(
            lambda: len(self.answers) > answered and self.session.agent_state == "listening",
            within=within,
            what="spoken answer",
        )


async def start_job_session(ctx: JobContext) -> JobSession:
    """The session of the job `ctx`, started; the caller closes it."""
    # imported in the job process: the worker process that forks it has no need of them
    from agent.wiring import build_agent, build_llm, build_session
    from agent.worker.observability import observe_session
    from agent.worker.reload import session_config

    # as the worker's entrypoint: `.env` as saved now, if it changed and passes
    config, vad = session_config(ctx.proc)
    session = build_session(config, vad=vad)
    turn_llm = build_llm(config)
    ctx.add_shutdown_callback(turn_llm.aclose)
    agent = build_agent(config, turn_llm=turn_llm)
    observe_session(
        session,
        agent.engine,
        settings=config.settings,
        add_shutdown_callback=ctx.add_shutdown_callback,
    )
    job = JobSession(session=session, mic=PacedMicrophone())

    def on_item(ev: ConversationItemAddedEvent) -> None:
        if isinstance(ev.item, llm.ChatMessage) and ev.item.role == "assistant":
            job.answers.append(ev.item)

    session.on("conversation_item_added", on_item)
    session.input.audio = job.mic
    session.output.audio = RecordingSpeaker()
    await session.start(agent)
    return job
