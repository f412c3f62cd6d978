"""Section 5 (stub): the voice path, pending the voice worker.

To fill in once the voice worker and its audio end-to-end test are on main: drive a
worker with recorded speech (the e2e test's audio and speech servers), and take from
livekit's metrics events (`metrics_collected`: VADMetrics/EOUMetrics, STTMetrics,
LLMMetrics.ttft, TTSMetrics.ttfb) and the speech server's own request log, per turn:

- end of user speech -> end of turn detected (VAD silence + endpointing delay)
- end of turn -> final transcript (STT)
- request -> first token (LLM, the server's own record, as in section 1)
- first text -> first TTS request, and TTS first byte
- RSS of an idle worker process and of one session's job process

`measure()` returns the rows; until then it returns None and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass

PENDING = "pending the voice worker"

STAGES = (
    "end of speech -> end of turn (VAD + endpointing)",
    "end of turn -> final transcript (STT)",
    "LLM request -> first token",
    "first text -> first TTS request",
    "TTS request -> first audio byte",
    "end of speech -> first TTS request (total)",
    "RSS, idle worker",
    "RSS, one session's job process",
)


@dataclass(frozen=True, slots=True)
class VoiceRow:
    stage: str
    p50: float
    p95: float
    unit: str


def measure() -> list[VoiceRow] | None:
    # TODO(voice): implement against the voice worker when it lands on main
    return None
