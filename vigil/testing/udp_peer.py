"""UDP peers on loopback that answer as a test tells them: a RADIUS server that
signs with another secret, answers the wrong request, sends garbage or stays
silent, without a mock of the socket.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

# (the datagram, its number from 1) -> the reply, or None for no answer
Answer = Callable[[bytes, int], "bytes | None"]


class UdpPeers:
    """Peers started with :meth:`start`; :meth:`close` ends them all (their threads
    end when their socket closes)."""

    def __init__(self) -> None:
        self._socks: list[socket.socket] = []

    def start(self, answer: Answer) -> tuple[int, list[bytes]]:
        """A peer answering the n-th datagram with ``answer(data, n)``: its port, and
        the list of what it receives (filled as it goes)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        self._socks.append(s)
        got: list[bytes] = []

        def serve() -> None:
            while True:
                try:
                    data, addr = s.recvfrom(4096)
                except OSError:
                    return
                got.append(data)
                reply = answer(data, len(got))
                if reply is not None:
                    s.sendto(reply, addr)

        threading.Thread(target=serve, daemon=True).start()
        return s.getsockname()[1], got

    def close(self) -> None:
        for s in self._socks:
            s.close()
        self._socks.clear()
