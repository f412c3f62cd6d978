"""The voice-agent runtime: config, worker, turn engine and tools."""
