"""``vigil-send-nsca``: a drop-in for the C ``send_nsca`` (same options, same input).

Input on stdin: result sets separated by ETB (0x17, ``-ds``), fields by tab
(``-d``): ``host<TAB>service<TAB>code<TAB>output`` or, with three fields,
``host<TAB>code<TAB>output`` for a host check. Trailing whitespace of a set is
stripped; the output is everything after the third delimiter (it may hold
tabs and newlines). All results go over one connection.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence

from nsca import client, nscacfg, packet
from nsca.errors import NSCAError
from nsca.result import CheckResult
from vigil.drop_log import printable

log = logging.getLogger(__name__)

USAGE = ("Usage: vigil-send-nsca [--quiet] -H <host_address> [-p port] [-to to_sec] "
         "[-d delim] [-ds set_delim] [-c config_file] [--legacy-2-7-mode]")
EXIT_OK, EXIT_CRITICAL, EXIT_UNKNOWN = 0, 2, 3


class UsageError(Exception):
    pass


def _delim(text: str) -> str:
    """``-d``/``-ds`` as send_nsca reads them: ``0x2c`` hex, ``44`` decimal, else a character."""
    try:
        if text.lower().startswith("0x"):
            value = int(text, 16)
        elif text.isdigit():
            value = int(text)
        else:
            value = -1
    except ValueError:
        raise UsageError(f"bad delimiter {text!r}") from None
    if value >= 0:
        if not 0 < value <= 255:
            raise UsageError(f"delimiter {text!r} is not a byte value 1..255")
        return chr(value) if value < 0x80 else chr(0xDC00 + value)  # a raw byte
    if not text:
        raise UsageError("empty delimiter")
    return text[0]


def parse_args(argv: Sequence[str]) -> dict:
    opts: dict = {"host": None, "port": 5667, "timeout": 10.0, "delim": "\t",
                  "set_delim": "\x17", "config": None, "quiet": False, "legacy": False}
    valued = {"-H": "host", "-p": "port", "-to": "timeout", "-d": "delim", "-ds": "set_delim",
              "-c": "config"}
    it = iter(argv)
    for arg in it:
        if arg in ("-h", "--help"):
            raise UsageError("")
        if arg == "--quiet":
            opts["quiet"] = True
        elif arg == "--legacy-2-7-mode":
            opts["legacy"] = True
        elif arg in valued:
            value = next(it, None)
            if value is None:
                raise UsageError(f"option {arg} needs a value")
            opts[valued[arg]] = value
        else:
            raise UsageError(f"unknown option {arg!r}")
    if not opts["host"]:
        raise UsageError("-H <host_address> is required")
    try:
        opts["port"] = int(opts["port"])
        opts["timeout"] = float(opts["timeout"])
    except ValueError:
        raise UsageError("port and timeout must be numbers") from None
    opts["delim"] = _delim(opts["delim"])
    opts["set_delim"] = _delim(opts["set_delim"])
    return opts


def _strtok(text: str, delim: str) -> tuple[str, str] | None:
    """C strtok: skip leading delimiters, cut at the next one; (token, rest)."""
    text = text.lstrip(delim)
    if not text:
        return None
    token, _, rest = text.partition(delim)
    return token, rest


def parse_input(data: str, delim: str = "\t", set_delim: str = "\x17") -> list[CheckResult]:
    """Results in send_nsca's input format; malformed sets are skipped (as it does)."""
    results = []
    for chunk in data.split(set_delim):
        chunk = chunk.rstrip(" \t\r\n")
        parts: list[str] = []
        rest = chunk
        for _ in range(3):
            got = _strtok(rest, delim)
            if got is None:
                break
            token, rest = got
            parts.append(token)
        if len(parts) < 3:
            if chunk.strip():
                log.warning("skipped incomplete input %s", printable(chunk))
            continue
        # Names too long for their field are cut, as send_nsca's strncpy does.
        host = packet.truncate_name(parts[0], packet.HOST_LEN)
        try:
            if rest:
                results.append(CheckResult(host, packet.truncate_name(parts[1],
                                                                      packet.SERVICE_LEN),
                                           _code(parts[2]), rest))
            else:
                results.append(CheckResult(host, None, _code(parts[1]), parts[2]))
        except ValueError as exc:
            log.warning("skipped input %s: %s", printable(chunk), exc)
    return results


def _code(text: str) -> int:
    """C's ``(int16_t)atoi(text)``: blanks, a sign, digits; anything else ends it."""
    m = re.match(r"[ \t\n\v\f\r]*([+-]?[0-9]+)", text)
    value = int(m.group(1)) if m else 0
    return (value + 0x8000) % 0x10000 - 0x8000


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    try:
        opts = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        if str(exc):
            print(f"Error: {exc}", file=sys.stderr)
        print(USAGE, file=sys.stderr)
        return EXIT_UNKNOWN
    password, method, legacy = "", 1, opts["legacy"]
    if opts["config"]:
        try:
            cfg = nscacfg.parse(opts["config"])
            password = nscacfg.get_password(cfg)
            method = nscacfg.get_int(cfg, opts["config"], "encryption_method", 1, 0, 255)
            legacy = nscacfg.get_bool(cfg, opts["config"], "legacy_2_7_mode", legacy)
        except nscacfg.CfgError as exc:
            print(str(exc), file=sys.stderr)
            return EXIT_UNKNOWN
    data = sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
    results = parse_input(data, opts["delim"], opts["set_delim"])
    try:
        n = client.send_results(results, host=opts["host"], port=opts["port"],
                                password=password, method=method, timeout=opts["timeout"],
                                packet_version=2 if legacy else 3) if results else 0
    except NSCAError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_CRITICAL
    if not opts["quiet"]:
        print(f"{n} data packet(s) sent to host successfully.")
    # send_nsca 2.10.2: nothing sent (empty or unusable input) is CRITICAL too
    return EXIT_OK if n else EXIT_CRITICAL
