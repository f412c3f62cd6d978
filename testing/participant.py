"""A participant in a real LiveKit room that talks and listens, as a person with a headset.

It joins with a token minted as the talk page mints them (`livekit-api`, with the agent's
dispatch when an agent name is given), publishes a microphone track that plays silence
and, on `say()`, a WAV, in real time in 20 ms frames; subscribes to the agent's audio and
records every frame with its arrival time (`time.time()`, one clock with the worker's
logs); and reads what the agent publishes besides speech: the `lk.transcription` text
streams (both sides' transcripts), the agent's state attribute, and our data messages
(`voice-agent.events`: tool status, turn latency).

What was heard can be cut into utterances (sound, then a silence) and transcribed by a
Whisper server (`transcribe`).
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
from livekit import rtc

from agent.commands.talk.server import TalkOptions, mint_token
from agent.voice.room_events import EVENTS_TOPIC

SAMPLE_RATE = 16000
FRAME_MS = 20
SPEECH_LEVEL = 300
"""A frame whose RMS (of 32768) is above this is sound; Opus's silence is near zero."""
TRANSCRIPTION_TOPIC = "lk.transcription"
AGENT_STATE = "lk.agent.state"
_FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000


def _rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


def _frame(pcm: bytes) -> rtc.AudioFrame:
    return rtc.AudioFrame(
        pcm, sample_rate=SAMPLE_RATE, num_channels=1, samples_per_channel=len(pcm) // 2
    )


def wav_bytes(pcm: bytes, rate: int = SAMPLE_RATE) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


@dataclass(frozen=True, slots=True)
class HeardFrame:
    at: float
    """time.time() when the frame reached this participant."""
    rms: float
    pcm: bytes

    @property
    def loud(self) -> bool:
        return self.rms > SPEECH_LEVEL


@dataclass(frozen=True, slots=True)
class Utterance:
    """What was heard from its first loud frame to the silence after it."""

    start: float
    end: float
    """time.time() of the first and of the last loud frame."""
    pcm: bytes

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class Spoken:
    """When a `say()` was heard to start and end: its first and last loud frames, as
    they left for the server (the WAV's silent padding is not speech)."""

    started_at: float
    ended_at: float


@dataclass(frozen=True, slots=True)
class Transcript:
    identity: str
    """Whose speech: the participant's own identity for its words, else the agent's."""
    segment_id: str
    final: bool
    text: str
    at: float


@dataclass
class _Say:
    frames: list[bytes]
    done: asyncio.Future[Spoken]
    started_at: float | None = None
    ended_at: float | None = None


@dataclass
class Heard:
    frames: list[HeardFrame] = field(default_factory=list)

    def first_loud_after(self, t: float) -> float | None:
        return next((f.at for f in self.frames if f.at > t and f.loud), None)

    def last_loud(self) -> float | None:
        return next((f.at for f in reversed(self.frames) if f.loud), None)

    def quiet_from(self, t: float, *, gap: float) -> float | None:
        """When the sound going on at `t` stopped: the last loud frame (or `t`) before the
        first `gap` seconds of quiet after `t`; None while that quiet has not come."""
        last = t
        for f in self.frames:
            if f.at > t and f.loud:
                if f.at - last > gap:
                    return last
                last = f.at
        return last if time.time() - last > gap else None

    def utterance(self, start: float, *, gap: float) -> Utterance | None:
        """From the first loud frame at/after `start` to the last one before `gap` seconds
        of quiet (None while that quiet has not been heard yet)."""
        frames = [f for f in self.frames if f.at >= start]
        first = next((i for i, f in enumerate(frames) if f.loud), None)
        if first is None:
            return None
        last = first
        for i in range(first, len(frames)):
            if frames[i].loud:
                if frames[i].at - frames[last].at > gap:
                    break
                last = i
        else:
            if time.time() - frames[last].at <= gap:
                return None  # may still go on
        pcm = b"".join(f.pcm for f in frames[first : last + 1])
        return Utterance(start=frames[first].at, end=frames[last].at, pcm=pcm)


class Participant:
    def __init__(
        self,
        *,
        url: str,
        api_key: str,
        api_secret: str,
        room: str,
        identity: str = "caller",
        agent_name: str = "",
    ) -> None:
        self.url = url
        self.room_name = room
        self.identity = identity
        self._token = mint_token(
            TalkOptions(
                livekit_url=url, api_key=api_key, api_secret=api_secret, agent_name=agent_name
            ),
            room=room,
            identity=identity,
        )
        self.room = rtc.Room()
        self.heard = Heard()
        self.transcripts: list[Transcript] = []
        self.events: list[dict[str, Any]] = []
        """Our data messages (`voice-agent.events`), in arrival order."""
        self.agent_states: list[tuple[float, str]] = []
        self._says: asyncio.Queue[_Say] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._streams: list[rtc.AudioStream] = []
        self._source: rtc.AudioSource | None = None

    # --- joining and leaving --------------------------------------------------------

    async def join(self) -> Self:
        room = self.room
        room.on("track_subscribed", self._on_track)
        room.on("data_received", self._on_data)
        room.on("participant_attributes_changed", self._on_attributes)
        room.register_text_stream_handler(TRANSCRIPTION_TOPIC, self._on_transcription)
        await room.connect(self.url, self._token)
        self._source = rtc.AudioSource(SAMPLE_RATE, 1)
        track = rtc.LocalAudioTrack.create_audio_track("microphone", self._source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await room.local_participant.publish_track(track, options)
        self._spawn(self._microphone(self._source))
        return self

    async def leave(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for stream in self._streams:
            await stream.aclose()
        await self.room.disconnect()
        if self._source is not None:
            await self._source.aclose()

    async def __aenter__(self) -> Self:
        return await self.join()

    async def __aexit__(self, *exc: object) -> None:
        await self.leave()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- talking --------------------------------------------------------------------

    async def say(self, wav: Path) -> Spoken:
        """Speak the WAV (16 kHz mono) into the microphone; returns once it has all been
        sent, with when its speech started and ended."""
        with wave.open(str(wav), "rb") as w:
            if (w.getframerate(), w.getnchannels()) != (SAMPLE_RATE, 1):
                raise ValueError(f"{wav}: want {SAMPLE_RATE} Hz mono")
            pcm = w.readframes(w.getnframes())
        step = _FRAME_SAMPLES * 2
        frames = [pcm[i : i + step].ljust(step, b"\x00") for i in range(0, len(pcm), step)]
        say = _Say(frames, asyncio.get_running_loop().create_future())
        self._says.put_nowait(say)
        return await say.done

    async def _microphone(self, source: rtc.AudioSource) -> None:
        """20 ms frames in real time for as long as it is in the room: silence between
        `say()`s, as a real microphone, so the agent's VAD hears each end of speech."""
        silence = b"\x00\x00" * _FRAME_SAMPLES
        current: _Say | None = None
        next_at = time.monotonic()
        while True:
            if current is None and not self._says.empty():
                current = self._says.get_nowait()
            pcm = current.frames.pop(0) if current is not None else silence
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at += FRAME_MS / 1000
            await source.capture_frame(_frame(pcm))
            if current is None:
                continue
            if _rms(pcm) > SPEECH_LEVEL:
                sent = time.time()
                current.started_at = current.started_at or sent
                current.ended_at = sent + FRAME_MS / 1000
            if not current.frames:
                if not current.done.done():
                    start = current.started_at or time.time()
                    current.done.set_result(Spoken(start, current.ended_at or start))
                current = None

    # --- listening ------------------------------------------------------------------

    @property
    def agent(self) -> rtc.RemoteParticipant | None:
        return next(
            (
                p
                for p in self.room.remote_participants.values()
                if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
            ),
            None,
        )

    @property
    def agent_state(self) -> str | None:
        return self.agent_states[-1][1] if self.agent_states else None

    def finals(self, *, mine: bool) -> list[str]:
        """Final transcripts of this participant's speech (`mine`) or of the agent's."""
        return [
            t.text
            for t in self.transcripts
            if t.final and (t.identity == self.identity) == mine and t.text.strip()
        ]

    async def utterance_after(
        self, start: float, *, within: float, gap: float = 1.0, what: str = "agent speech"
    ) -> Utterance:
        """The first utterance heard after `start`, once `gap` seconds of quiet end it."""
        deadline = time.monotonic() + within
        while (found := self.heard.utterance(start, gap=gap)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {what} heard within {within:g} s")
            await asyncio.sleep(0.05)
        return found

    def _on_track(
        self,
        track: rtc.Track,
        _publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if track.kind != rtc.TrackKind.KIND_AUDIO:
            return
        stream = rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=1)
        self._streams.append(stream)
        self._spawn(self._record(stream))

    async def _record(self, stream: rtc.AudioStream) -> None:
        async for event in stream:
            pcm = bytes(event.frame.data)
            self.heard.frames.append(HeardFrame(time.time(), _rms(pcm), pcm))

    def _on_data(self, packet: rtc.DataPacket) -> None:
        if packet.topic != EVENTS_TOPIC:
            return
        try:
            self.events.append(json.loads(packet.data))
        except ValueError:
            self.events.append({"unparsed": packet.data.decode(errors="replace")})

    def _on_attributes(self, changed: dict[str, str], participant: rtc.Participant) -> None:
        if AGENT_STATE in changed and participant.identity != self.identity:
            self.agent_states.append((time.time(), changed[AGENT_STATE]))

    def _on_transcription(self, reader: rtc.TextStreamReader, identity: str) -> None:
        self._spawn(self._read_transcript(reader, identity))

    async def _read_transcript(self, reader: rtc.TextStreamReader, identity: str) -> None:
        text = await reader.read_all()
        attrs = reader.info.attributes or {}
        self.transcripts.append(
            Transcript(
                identity=identity,
                segment_id=attrs.get("lk.segment_id", reader.info.stream_id),
                final=attrs.get("lk.transcription_final") == "true",
                text=text,
                at=time.time(),
            )
        )


async def transcribe(pcm: bytes, *, base_url: str, rate: int = SAMPLE_RATE) -> str:
    """What a Whisper server (OpenAI's transcription API at `base_url`) hears in `pcm`."""
    import openai

    async with openai.AsyncOpenAI(base_url=base_url, api_key="not-needed", max_retries=0) as c:
        result = await c.audio.transcriptions.create(
            file=("heard.wav", wav_bytes(pcm, rate), "audio/wav"), model="tiny.en"
        )
    return result.text.strip()


async def wait_for(check: Callable[[], object], *, within: float, what: str) -> None:
    """`testing.polling.until` for a check that returns something truthy."""
    from testing.polling import until

    await until(lambda: bool(check()), within=within, what=what)
