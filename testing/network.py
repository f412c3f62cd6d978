"""This machine's network, as tests of what listens where see it."""

from __future__ import annotations

import socket


def other_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (None: it has none)."""
    for target in ("10.255.255.255", "192.0.2.1", "198.51.100.1"):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.connect((target, 9))  # UDP: picks the outgoing address, sends nothing
            address = str(probe.getsockname()[0])
        except OSError:
            continue
        finally:
            probe.close()
        if not address.startswith("127."):
            return address
    return None


def answers_live(address: str, port: int) -> bool:
    """Whether `GET /live` at `address:port` answers 200 (False: refused, or no answer)."""
    try:
        with socket.create_connection((address, port), timeout=2) as conn:
            conn.sendall(f"GET /live HTTP/1.1\r\nHost: {address}\r\n\r\n".encode())
            return conn.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
