"""Edge cases against Debian's nsca / send_nsca 2.10.2: Vigil does what C does.

Each case runs the real C program on one side and compares what lands in a
command file byte for byte: C ``send_nsca`` into the C ``nsca`` (the
reference) against C ``send_nsca`` into Vigil's server, and against
``vigil-send-nsca`` into the C ``nsca``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nsca import nscacfg, packet
from nsca.commandfile import CommandFileSink
from nsca.server import CommandSink, ServerOptions
from nsca.testing import RealNSCA, VigilServer
from vigil.testing.ports import free_port
from vigil.testing.wait import wait_until

pytestmark = pytest.mark.integration  # the C send_nsca/nsca and Vigil's, side by side

BIN = Path(sys.executable).parent
VIGIL_SEND = str(BIN / "vigil-send-nsca")
REPO = Path(__file__).resolve().parents[2]


def _cfg(tmp: Path, text: bytes, name: str = "send.cfg") -> Path:
    cfg = tmp / name
    cfg.write_bytes(text)
    cfg.chmod(0o600)
    return cfg


def _send(program: str, port: int, data: bytes, cfg: Path, *args: str
          ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([program, "-H", "127.0.0.1", "-p", str(port), "-c", str(cfg), *args],
                          input=data, capture_output=True, timeout=60)


def _bodies(raw: bytes) -> list[bytes]:
    """Command lines without their ``[timestamp] `` (it differs between runs)."""
    return [ln.split(b"] ", 1)[1] for ln in raw.splitlines()]


class Pair:
    """A C nsca and a Vigil server with the same password, each with a command file."""

    def __init__(self, tmp: Path, password: bytes = b"pw", method: int = 1,
                 max_packet_age: int = 30) -> None:
        text_pw = password.decode("utf-8", "surrogateescape")
        self.c = RealNSCA(tmp / "c", method=method, password=text_pw,
                          max_packet_age=max_packet_age).start()
        self.v_out = tmp / "vigil.cmd"
        self.v_out.touch()
        self.v = VigilServer(ServerOptions(port=0, password=text_pw, method=method,
                                           max_packet_age=max_packet_age, clock_skew=0),
                             CommandSink(CommandFileSink(self.v_out)))
        self.cfg = _cfg(tmp, b"password=" + password + b"\nencryption_method=%d\n" % method)

    def stop(self) -> None:
        self.c.stop()
        self.v.stop()

    def wait(self, path: Path, n: int) -> list[bytes]:
        wait_until(lambda: len(path.read_bytes().splitlines()) >= n, timeout=10)
        return _bodies(path.read_bytes())

    def three_ways(self, data: bytes, n: int, *args: str) -> tuple[list[bytes], ...]:
        """(C->C, C->Vigil, Vigil->C) command lines for the same input."""
        before_c = len(self.c.command_file.read_bytes().splitlines())
        before_v = len(self.v_out.read_bytes().splitlines())
        r1 = _send("send_nsca", self.c.port, data, self.cfg, *args)
        r2 = _send("send_nsca", self.v.port, data, self.cfg, *args)
        c_to_c = self.wait(self.c.command_file, before_c + n)[before_c:]
        c_to_v = self.wait(self.v_out, before_v + n)[before_v:]
        r3 = _send(VIGIL_SEND, self.c.port, data, self.cfg, *args)
        assert r1.returncode == r2.returncode == r3.returncode, (r1, r2, r3)
        v_to_c = self.wait(self.c.command_file, before_c + 2 * n)[before_c + n:]
        return c_to_c, c_to_v, v_to_c


@pytest.fixture
def pair(tmp_path: Path):
    p = Pair(tmp_path)
    yield p
    p.stop()


def test_bytes_pass_through_latin1_and_a_cut_character(pair: Pair) -> None:
    # Latin-1 host and output, and an output send_nsca cuts inside a UTF-8 character
    long_out = b"x" * 4094 + "é".encode() + b"tail"
    data = (b"h\xe9te\tsvc\xe9\t0\tlat\xe9n \xff\x17"
            b"web1\tHTTP\t1\t" + long_out + b"\x17")
    c_to_c, c_to_v, v_to_c = pair.three_ways(data, 2)
    assert c_to_c[0] == b"PROCESS_SERVICE_CHECK_RESULT;h\xe9te;svc\xe9;0;lat\xe9n \xff"
    assert c_to_v == c_to_c
    assert v_to_c[0] == c_to_c[0]
    # C cuts at 4,095 bytes mid-character; Vigil passes it through unchanged, never
    # doubles it; vigil-send-nsca cuts before the broken character.
    assert c_to_v[1] == c_to_c[1] and len(c_to_c[1]) == len(b"PROCESS_SERVICE_CHECK_RESULT;"
                                                            b"web1;HTTP;1;") + 4095
    assert v_to_c[1] == c_to_c[1][:-1]


@pytest.mark.parametrize("code,written", [("4", b"4"), ("-1", b"-1"), ("+1", b"1"),
                                          (" 2x", b"2"), ("70000", b"4464"), ("abc", b"0")])
def test_status_outside_0_3_written_through_like_c(pair: Pair, code: str,
                                                   written: bytes) -> None:
    data = f"h1\ts1\t{code}\tout\x17".encode()
    c_to_c, c_to_v, v_to_c = pair.three_ways(data, 1)
    assert c_to_c == [b"PROCESS_SERVICE_CHECK_RESULT;h1;s1;" + written + b";out"]
    assert c_to_v == c_to_c and v_to_c == c_to_c


def test_long_names_cut_like_c(pair: Pair) -> None:
    data = b"h" * 70 + b"\t" + "é".encode() * 70 + b"\t0\tlong\x17" + b"H" * 80 + b"\t0\thost\x17"
    c_to_c, c_to_v, v_to_c = pair.three_ways(data, 2)
    assert c_to_c[0].split(b";")[1] == b"h" * 63
    assert len(c_to_c[0].split(b";")[2]) == 127
    assert c_to_v == c_to_c and v_to_c == c_to_c


@pytest.mark.parametrize("args,data", [
    (("-d", "44"), b"h1,s1,2,comma\x17"),
    (("-d", "0x2c"), b"h1,s1,2,comma\x17"),
    (("-ds", "10"), b"h1\ts1\t1\tA\nh2\ts2\t1\tB\n"),
    (("-d", "44", "-ds", "59"), b"h1,s1,0,semi;h2,s2,0,colon;"),
])
def test_delimiters_as_decimal_or_hex_byte_values(pair: Pair, args: tuple[str, ...],
                                                  data: bytes) -> None:
    n = data.count(b"\x17") or data.count(b"\n") or data.count(b";")
    c_to_c, c_to_v, v_to_c = pair.three_ways(data, n, *args)
    assert len(c_to_c) == n and c_to_v == c_to_c and v_to_c == c_to_c


@pytest.mark.parametrize("data", [b"", b"onlytwo\tfields\x17", b"\x17\x17  \n"])
def test_nothing_sent_exits_2_like_c(tmp_path: Path, data: bytes) -> None:
    c = RealNSCA(tmp_path / "c", password="pw").start()
    try:
        cfg = _cfg(tmp_path, b"password=pw\nencryption_method=1\n")
        ref = _send("send_nsca", c.port, data, cfg)
        ours = _send(VIGIL_SEND, c.port, data, cfg)
        assert ref.returncode == 2 and ours.returncode == 2, (ref, ours)
        assert b"0 data packet(s) sent" in ours.stdout
    finally:
        c.stop()


@pytest.mark.parametrize("password", [b"se cret ", b"secret\r", b" lead", b"p\xe9ss"])
def test_password_values_read_like_c(tmp_path: Path, password: bytes) -> None:
    """The same config line works C to Vigil and Vigil to C (spaces, CR, bytes kept)."""
    cfg = _cfg(tmp_path, b"password=" + password + b"\nencryption_method=1\n")
    assert nscacfg.get_password(nscacfg.parse(cfg)).encode("utf-8", "surrogateescape") \
        == password
    # the Vigil daemon reads its nsca.cfg the way C does
    out = tmp_path / "vigil.cmd"
    out.touch()
    port = free_port()
    ncfg = _cfg(tmp_path, b"server_port=%d\nserver_address=127.0.0.1\npassword=%s\n"
                b"decryption_method=1\ncommand_file=%s\n" % (port, password, bytes(out)),
                "nsca.cfg")
    c = RealNSCA(tmp_path / "c", password=password.decode("utf-8", "surrogateescape")).start()
    daemon = subprocess.Popen([str(BIN / "vigil-nsca"), "-c", str(ncfg)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: _listening(port))
        assert _send("send_nsca", port, b"h\ts\t0\tC to Vigil\x17", cfg).returncode == 0
        assert _send(VIGIL_SEND, c.port, b"h\ts\t0\tVigil to C\x17", cfg).returncode == 0
        assert wait_until(lambda: out.read_bytes().endswith(b";h;s;0;C to Vigil\n"))
        assert wait_until(lambda: c.command_file.read_bytes().endswith(b";h;s;0;Vigil to C\n"))
    finally:
        daemon.terminate()
        daemon.wait(10)
        c.stop()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _capture_size(program: str, cfg: Path, *args: str) -> int:
    """Bytes a client sends for one result to a listener speaking NSCA method 0."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    got: list[int] = []

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.sendall(packet.encode_init(bytes(packet.IV_SIZE), int(time.time())))
            n = 0
            while chunk := conn.recv(65536):
                n += len(chunk)
            got.append(n)

    t = threading.Thread(target=serve)
    t.start()
    res = _send(program, srv.getsockname()[1], b"h\ts\t0\tx\x17", cfg, *args)
    t.join(10)
    srv.close()
    assert res.returncode == 0, res
    return got[0]


def test_legacy_2_7_mode_yes_as_c_spells_it(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, b"password=pw\nencryption_method=0\nlegacy_2_7_mode=yes\n")
    assert _capture_size("send_nsca", cfg) == packet.PACKET_SIZE_LEGACY
    assert _capture_size(VIGIL_SEND, cfg) == packet.PACKET_SIZE_LEGACY
    plain = _cfg(tmp_path, b"password=pw\nencryption_method=0\n", "plain.cfg")
    assert _capture_size(VIGIL_SEND, plain) == packet.PACKET_SIZE_V3


def test_sample_send_nsca_cfg_is_read_alike(tmp_path: Path) -> None:
    sample = REPO / "etc" / "nsca" / "send_nsca.cfg"
    c = RealNSCA(tmp_path / "c", password="change-me").start()
    try:
        for program in ("send_nsca", VIGIL_SEND):
            res = _send(program, c.port, f"h\ts\t0\t{Path(program).name}\x17".encode(), sample)
            assert res.returncode == 0, res
        assert wait_until(lambda: len(c.lines()) == 2)
    finally:
        c.stop()
    enabled = _cfg(tmp_path, sample.read_bytes().replace(b"#legacy_2_7_mode=yes",
                                                         b"legacy_2_7_mode=yes"))
    enabled.write_bytes(enabled.read_bytes().replace(b"encryption_method=1",
                                                     b"encryption_method=0"))
    assert _capture_size("send_nsca", enabled) == packet.PACKET_SIZE_LEGACY
    assert _capture_size(VIGIL_SEND, enabled) == packet.PACKET_SIZE_LEGACY


def test_slow_pipe_into_send_nsca_is_accepted_like_c(tmp_path: Path) -> None:
    """Results written into send_nsca after max_packet_age + skew still count."""
    p = Pair(tmp_path, max_packet_age=1)
    try:
        for port, out in ((p.c.port, p.c.command_file), (p.v.port, p.v_out)):
            proc = subprocess.Popen(["send_nsca", "-H", "127.0.0.1", "-p", str(port),
                                     "-c", str(p.cfg), "-to", "30"],
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
            assert proc.stdin is not None
            proc.stdin.write(b"h1\ts1\t0\tfirst\x17")
            proc.stdin.flush()
            assert wait_until(lambda out=out: out.read_bytes().endswith(b";first\n"), timeout=10)
            time.sleep(3)  # the pipe is slow on purpose: longer than max_packet_age
            proc.stdin.write(b"h1\ts1\t0\tlate\x17")
            proc.stdin.close()
            assert proc.wait(30) == 0
            assert wait_until(lambda out=out: out.read_bytes().endswith(b";late\n"), timeout=10)
        # stamped with its own connection's init time: judged on arrival, never too old
        assert p.v.server.stats.too_old == 0
    finally:
        p.stop()


def test_bytes_pass_through_the_spool_and_relay(tmp_path: Path) -> None:
    """send_nsca -> Vigil server -> spool -> relay -> C nsca: the bytes C to C gives."""
    from nsca.relay import NSCADestination, Relay
    from nsca.server import SpoolSink
    from nsca.spool import SpoolWriter

    data = b"h\xe9te\tsvc \xff\t1\tlat\xe9n \xc3\x17" + b"web1\t\xe9\t0\t" + b"y" * 5000 + b"\x17"
    ref = RealNSCA(tmp_path / "ref", password="pw").start()
    central = RealNSCA(tmp_path / "central", password="pw").start()
    spool = tmp_path / "spool"
    srv = VigilServer(ServerOptions(port=0, password="pw"),
                      SpoolSink(SpoolWriter(spool, seal_interval=0.02)))
    relay = Relay(spool, [NSCADestination("127.0.0.1", central.port, password="pw")],
                  retry_min=0.05, retry_max=0.2, rescan_interval=0.1)
    t = threading.Thread(target=relay.run)
    t.start()
    try:
        cfg = _cfg(tmp_path, b"password=pw\nencryption_method=1\n")
        assert _send("send_nsca", ref.port, data, cfg).returncode == 0
        assert _send("send_nsca", srv.port, data, cfg).returncode == 0
        assert wait_until(lambda: len(central.command_file.read_bytes().splitlines()) == 2)
        assert wait_until(lambda: len(ref.command_file.read_bytes().splitlines()) == 2)
    finally:
        relay.stop()
        t.join(10)
        srv.stop()
        ref.stop()
        central.stop()
    got, want = _bodies(central.command_file.read_bytes()), _bodies(ref.command_file.read_bytes())
    assert got[0] == want[0] == b"PROCESS_SERVICE_CHECK_RESULT;h\xe9te;svc \xff;1;lat\xe9n \xc3"
    # The relay's packets carry the Vigil trailer (result id, check time) in the
    # last 32 bytes of the output field, so a long output is cut 32 bytes sooner.
    assert want[1].startswith(got[1]) and len(want[1]) - len(got[1]) == packet.TRAILER.size
