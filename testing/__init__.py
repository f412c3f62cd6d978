"""Test doubles and helpers that the tests and the benchmarks share.

Real peers on 127.0.0.1 (`testing.servers`), audio in and out of a session
(`testing.audio_io`), and the small helpers both sides need once: an engine against a
scripted server, the `voice-agent` CLI in a clean environment, a free port, a poller.
Not part of the wheel: pytest finds it from the repository root, and `python -m bench`
runs from there.
"""
