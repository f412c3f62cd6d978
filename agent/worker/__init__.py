"""The LiveKit worker process: its AgentServer and session entrypoint, health port,

connection state and load."""
