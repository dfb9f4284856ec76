"""``[NSCA]``: every option of the NSCA client, server, relay and NSCA-NG forwarder."""

from __future__ import annotations

from collections.abc import Callable

from nsca.crypto import METHOD_NAMES
from vigil.config import boolean, choice, host, integer, path, secret, text
from vigil.datatypes import Declarations

OPTIONS = Declarations()  # collected by vigil.config.default_registry
declare = OPTIONS.declare


def host_port(default_port: int) -> Callable[[str], tuple[str, int]]:
    def convert(value: str) -> tuple[str, int]:
        value = value.strip()
        if value.startswith("["):  # [v6]:port
            h, _, rest = value[1:].partition("]")
            p = rest.lstrip(":")
        elif value.count(":") == 1:
            h, p = value.split(":")
        else:
            h, p = value, ""
        host(h)
        if not p:
            return h, default_port
        if not p.isdigit() or not 1 <= int(p) <= 65535:
            raise ValueError(f"{value!r}: port {p!r} is not 1..65535")
        return h, int(p)

    return convert


def host_port_list(default_port: int) -> Callable[[str], list[tuple[str, int]]]:
    one = host_port(default_port)

    def convert(value: str) -> list[tuple[str, int]]:
        items = [v for v in (s.strip() for s in value.split(",")) if v]
        out = [one(v) for v in items]
        if len(set(out)) != len(out):
            raise ValueError(f"{value!r} names the same server twice")
        return out

    return convert


def method(value: str) -> int:
    allowed = ", ".join(f"{m} ({n})" for m, n in sorted(METHOD_NAMES.items()))
    if not value.isdigit() or int(value) not in METHOD_NAMES:
        raise ValueError(f"{value!r} is not a supported encryption method; use {allowed}")
    return int(value)


def optional_method(value: str) -> int | None:
    return None if value == "" else method(value)


def allowed_hosts(value: str) -> str:
    from nsca.server import parse_allowed

    parse_allowed(value)
    return value


def packet_version(value: str) -> int:
    if value not in ("2", "3"):
        raise ValueError(f"{value!r}: use 3 (nsca >= 2.9, 4304-byte packets) or 2 "
                         "(nsca 2.7, 720-byte packets)")
    return int(value)


S = "NSCA"
# -- client (every server's scheduler) --------------------------------------
declare(S, "Config_Server", host_port(5667), "127.0.0.1:5667",
        "host:port of the configuration server every scheduler sends its results to.")
declare(S, "Password", secret, "",
        "NSCA password (the same on both ends; keep this file mode 0600).", secret=True)
declare(S, "Encryption_Method", method, "1",
        "0 none, 1 XOR, 2 DES, 3 3DES, 14 RIJNDAEL-128 (AES-256 key), as in nsca.cfg.")
declare(S, "Packet_Version", packet_version, "3",
        "3: 4304-byte packets (nsca >= 2.9); 2: 720-byte packets for an nsca 2.7 peer.")
declare(S, "Timeout_sec", integer(1, 300), "10",
        "Connect and read timeout towards an NSCA server.")
# -- server -------------------------------------------------------------------
declare(S, "Listen_Address", host, "127.0.0.1", "Address `vigil nsca server` listens on.")
declare(S, "Listen_Port", integer(1, 65535), "5667", "Port `vigil nsca server` listens on.")
declare(S, "Allowed_Hosts", allowed_hosts, "",
        "Comma list of addresses or networks that may send results; empty: everyone.")
declare(S, "Max_Packet_Age", integer(0, 900), "30",
        "Drop packets older than this many seconds (0: off), as nsca's max_packet_age. "
        "A packet stamped with its own connection's start (send_nsca's) is judged on "
        "arrival, so a slow pipe into send_nsca loses nothing.")
declare(S, "Clock_Skew_sec", integer(0, 300), "5",
        "Tolerance added to Max_Packet_Age, and allowed for packets stamped in the future.")
declare(S, "Server_Output", choice("spool", "command_file"), "spool",
        "Where the server puts results: the spool (configuration server, feeds the relay) "
        "or the Nagios command file (central server).")
declare(S, "Command_File", path, "/var/lib/nagios4/rw/nagios.cmd",
        "Nagios external command file (a pipe).")
declare(S, "Alternate_Dump_File", text, "",
        "Where results go while the command file is missing; empty: keep them queued.")
declare(S, "Dedupe_Window", integer(0, 10_000_000), "200000",
        "Result ids remembered to drop a batch the relay had to send twice (0: off); "
        "about 100 bytes of memory each. It must cover what arrives while a crashed "
        "relay restarts.")
declare(S, "Idle_Timeout_sec", integer(1, 3600), "60",
        "Close a client connection silent for this long.")
declare(S, "First_Packet_Timeout_sec", integer(1, 3600), "10",
        "Close a connection that has not sent a valid packet this long after connecting "
        "(send_nsca gives up after 10 s by default), so idle sockets cannot hold slots.")
declare(S, "Max_Connections", integer(1, 100_000), "256",
        "Connections served at once. When full, the oldest connection that has not yet "
        "sent a valid packet is closed to make room.")
declare(S, "Max_Connections_Per_Source", integer(1, 100_000), "32",
        "Connections from one address (an IPv6 /64) at once; beyond it that address's "
        "oldest silent connection is closed, or the new one refused when all of them "
        "are sending.")
# -- spool and relay ---------------------------------------------------------------
declare(S, "Spool_Dir", text, "",
        "On-disk spool between the server and the relay; empty: <[Site] State_Dir>/nsca-spool.")
declare(S, "Seal_Interval_ms", integer(1, 10_000), "200",
        "Group commit: how long spooled results wait for their fsync at most.")
declare(S, "Central_Servers", host_port_list(5667), "",
        "Comma list of host:port of the central NSCA servers the relay forwards to.")
declare(S, "Central_Password", secret, "",
        "Password towards the central servers; empty: the same as Password.", secret=True)
declare(S, "Central_Encryption_Method", optional_method, "",
        "Encryption method towards the central servers; empty: Encryption_Method.")
declare(S, "Relay_To_Command_File", boolean, "No",
        "The relay also feeds the local Nagios ([NSCA] Command_File) from the spool, "
        "as one more central server with its own cursor (central role, one-machine demo).")
declare(S, "Batch_Size", integer(1, 10_000), "20",
        "Results per connection (transaction) to each central server.")
declare(S, "Retry_Min_sec", integer(1, 3600), "1", "First wait after a failed send.")
declare(S, "Retry_Max_sec", integer(1, 3600), "60", "Longest wait between retries.")
declare(S, "Cursor_Fsync", boolean, "No",
        "fsync every cursor update. No: cursors survive a crash of the relay (page cache) "
        "and are fsynced once a second; after a power loss up to a second is re-sent, "
        "and Vigil centrals drop it by result id.")
# -- NSCA-NG forwarder (DMZ proxy) -------------------------------------------------
declare(S, "NG_Servers", host_port_list(5668), "",
        "Comma list of host:port of NSCA-NG servers the relay forwards to (TLS-PSK).")
declare(S, "NG_Identity", text, "vigil", "PSK identity presented to the NSCA-NG servers.")
declare(S, "NG_Password", secret, "", "NSCA-NG shared secret (PSK).", secret=True)
declare(S, "NG_Batch_Size", integer(1, 10_000), "20", "Results per NSCA-NG connection.")
