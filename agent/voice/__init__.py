"""The parts of a spoken session around the engine: the livekit Agent, turn detection, STT at
pauses, first-clause TTS, the preemptive gate, and what a session reports to the room and logs."""
