"""Clock offset against an NTP server (one SNTP query, RFC 4330)."""

from __future__ import annotations

import argparse
import os
import socket
import struct
import sys
import time

from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, PluginError, Reading, TargetDown

NTP_EPOCH = 2208988800  # seconds from 1900-01-01 to 1970-01-01


def to_ntp(t: float) -> bytes:
    sec = int(t) + NTP_EPOCH
    return struct.pack("!II", sec & 0xFFFFFFFF, int((t % 1) * 2**32) & 0xFFFFFFFF)


def from_ntp(b: bytes) -> float:
    sec, frac = struct.unpack("!II", b)
    return sec - NTP_EPOCH + frac / 2**32


def query(host: str, port: int, timeout: float) -> tuple[float, float, int]:
    """(offset, round-trip delay, stratum) from one exchange with the server."""
    try:
        addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    except socket.gaierror as exc:
        raise PluginError(f"cannot resolve {host}: {exc.strerror}") from None
    # client mode (3), version 4; our transmit time goes out as a random-looking
    # cookie the server echoes as "originate", tying the answer to this request
    cookie = os.urandom(8)
    request = bytes([0x23]) + bytes(39) + cookie
    with socket.socket(addr[0], socket.SOCK_DGRAM) as sock:
        sock.connect(addr[4])
        sock.settimeout(timeout)
        t1 = time.time()
        sock.send(request)
        deadline = time.monotonic() + timeout
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(512)
            except TimeoutError:
                raise TargetDown(f"NTP {host}:{port}: no answer within {timeout:g}s") from None
            except ConnectionRefusedError:
                raise TargetDown(f"NTP {host}:{port}: connection refused") from None
            t4 = time.time()
            if len(data) >= 48 and data[24:32] == cookie:
                break
    mode, stratum = data[0] & 0x7, data[1]
    leap = data[0] >> 6
    if mode != 4:
        raise TargetDown(f"NTP {host}:{port}: not a server reply (mode {mode})")
    if stratum == 0 or stratum >= 16 or leap == 3:
        raise TargetDown(f"NTP {host}:{port}: server not synchronised "
                         f"(stratum {stratum}, leap {leap})")
    t2, t3 = from_ntp(data[32:40]), from_ntp(data[40:48])
    offset = ((t2 - t1) + (t3 - t4)) / 2
    delay = (t4 - t1) - (t3 - t2)
    return offset, delay, stratum


class ClockOffset(Plugin):
    name = "clock_offset"
    title = "Clock offset against an NTP server"
    label = "offset_abs"
    uom = "s"
    warning = "0.5"
    critical = "1"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-H", "--host", help="NTP server (default [Checks] NTP_Server)")
        parser.add_argument("-p", "--port", type=int, default=123, help="port (default 123)")

    def probe(self, ctx: Context) -> Reading:
        server = ctx.args.host or ctx.option("Checks", "NTP_Server", "")
        if not server:
            # nothing to compare with is a choice of the site, not a fault of the check
            return Reading(0, "not configured: no NTP server to compare with (set [Checks] "
                           "NTP_Server or -H)", judge=False, perf=False)
        offset, delay, stratum = query(server, ctx.args.port, ctx.remaining())
        return Reading(round(abs(offset), 6),
                       f"clock offset {offset * 1000:+.1f} ms against {server} "
                       f"(stratum {stratum}, delay {delay * 1000:.1f} ms)", min=0,
                       extra=[Perfdata("offset", round(offset, 6), "s"),
                              Perfdata("delay", round(delay, 6), "s", min=0)])


PLUGIN = ClockOffset

if __name__ == "__main__":
    sys.exit(ClockOffset.main())
