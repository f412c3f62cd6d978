"""`voice-agent check`: validate the configuration and probe every backend.

One line per backend on stdout, `ok` or `FAIL` with what failed and the URL (never a
key, nor a control character a server sent); exit status 1 if any failed. The
configuration itself was validated before this runs (a bad value exits 2 with one line
naming the variable).
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from livekit import api

from agent.commands.printable import printable
from agent.config.resolved import Config
from agent.config.settings import Settings
from agent.ops.logging import shorten
from agent.wiring import build_llm_backends
from providers.probes import ProbeResult, describe_error, probe_llm, probe_stt, probe_tts

PROBE_TIMEOUT = 10.0
_LINE_CHARS = 240


async def probe_livekit(settings: Settings, *, request_timeout: float) -> ProbeResult:
    """List rooms with the worker's credentials: proves the URL and the key/secret pair."""
    lk = api.LiveKitAPI(
        settings.livekit_url,
        settings.livekit_api_key,
        settings.livekit_api_secret.get_secret_value(),
    )
    try:
        resp = await asyncio.wait_for(lk.room.list_rooms(api.ListRoomsRequest()), request_timeout)
        return ProbeResult(True, f"server answered ({len(resp.rooms)} active rooms)")
    except TimeoutError:
        return ProbeResult(False, "timed out")
    except api.TwirpError as e:
        return ProbeResult(False, f"{e.code}: {e.message}")
    except Exception as e:
        return ProbeResult(False, describe_error(e))
    finally:
        await lk.aclose()


def _numbered(kind: str, i: int) -> str:
    """`llm`, then `llm[1]`, `llm[2]` for the fallbacks."""
    return f"{kind}[{i}]" if i else kind


async def run_check(
    config: Config, *, out: TextIO = sys.stdout, request_timeout: float = PROBE_TIMEOUT
) -> int:
    settings = config.settings
    # every LLM backend, fallbacks included: a broken fallback is found now, not on a bad day
    llms = build_llm_backends(config)
    stts = [b.options for b in config.backends.stt_backends]
    ttss = [b.options for b in config.backends.tts_backends]
    names_urls = [
        *((_numbered("llm", i), llm.base_url) for i, llm in enumerate(llms)),
        *((_numbered("stt", i), o.location) for i, o in enumerate(stts)),
        *((_numbered("tts", i), o.base_url) for i, o in enumerate(ttss)),
        ("livekit", settings.livekit_url),
    ]
    try:
        results = await asyncio.gather(
            *(probe_llm(llm, request_timeout=request_timeout) for llm in llms),
            *(probe_stt(o, request_timeout=request_timeout) for o in stts),
            *(probe_tts(o, request_timeout=request_timeout) for o in ttss),
            probe_livekit(settings, request_timeout=request_timeout),
        )
    finally:
        for llm in llms:
            await llm.aclose()
    for (name, url), result in zip(names_urls, results, strict=True):
        status = "ok  " if result.ok else "FAIL"
        # the detail may be a server's words: no control characters reach the terminal
        line = shorten(f"{name:<8} {status} {url}  {result.detail}", _LINE_CHARS)
        out.write(printable(line) + "\n")
    out.flush()
    return 0 if all(r.ok for r in results) else 1
