"""A free loopback port for a test server (never 1812, 3306, 5667 ...).

The port is free when asked; a server that binds it a moment later almost
always gets it, and the tests that must not race bind port 0 themselves.
"""

from __future__ import annotations

import socket


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nothing listens on, TCP by default; ``socket.SOCK_DGRAM`` for UDP."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_udp_port() -> int:
    return free_port(socket.SOCK_DGRAM)
