"""The `voice-agent` command: start/dev/console (handed to livekit's CLI), chat, check, setup
and talk."""
