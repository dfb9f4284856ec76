"""A free loopback port for a test server (never 1812, 3306, 5667 ...).

The port is free when asked; a server that binds it a moment later almost
always gets it, and the tests that must not race bind port 0 themselves.
"""

from __future__ import annotations

import socket
import threading

# The kernel may hand the same ephemeral port to two bind(0) calls in a row
# once the first socket is closed. Two servers built before either starts
# (a master and its replica) then share a port: the second fails to bind and
# its start-up check talks to the first. CI saw a "replica" that was the master.
_given: set[tuple[int, int]] = set()
_lock = threading.Lock()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nothing listens on, TCP by default; ``socket.SOCK_DGRAM`` for UDP.

    Never the same one twice in this process.
    """
    with _lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if (kind, port) not in _given:
                _given.add((kind, port))
                return port
    raise RuntimeError("no free loopback port not already handed out")


def free_udp_port() -> int:
    return free_port(socket.SOCK_DGRAM)
