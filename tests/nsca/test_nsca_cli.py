"""Entry points as supervisor runs them: foreground, SIGTERM is a clean exit."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nsca import client
from nsca.result import CheckResult
from nsca.send_nsca import parse_input
from nsca.testing import run_send_nsca, wait_lines, wait_port
from vigil.testing.ports import free_port
from vigil.testing.wait import wait_until

pytestmark = pytest.mark.integration  # real processes: vigil commands, servers, plugins

BIN = Path(sys.executable).parent


def _conf(tmp_path: Path, **nsca: object) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    conf = tmp_path / "vigil.conf"
    body = "\n".join(f"{k}={v}" for k, v in nsca.items())
    conf.write_text(f"[Site]\nState_Dir={tmp_path}/state\nLog_Dir={tmp_path}\n"
                    f"[Log]\nLevel=INFO\n[NSCA]\nPassword=Zq9-pw\n{body}\n")
    conf.chmod(0o600)
    return conf


def _stop(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=20)
    return proc.returncode, err.decode()


def test_server_and_relay_under_sigterm(tmp_path: Path) -> None:
    """config server (spool) -> relay -> central (command file); all as `vigil nsca ...`."""
    central_port, intake_port = free_port(), free_port()
    cmd_file = tmp_path / "nagios.cmd"
    cmd_file.touch()
    central_conf = _conf(tmp_path / "central", Listen_Port=central_port,
                         Server_Output="command_file", Command_File=cmd_file)
    intake_conf = _conf(tmp_path / "config", Listen_Port=intake_port,
                        Central_Servers=f"127.0.0.1:{central_port}")
    procs = [subprocess.Popen([BIN / "vigil", "-c", str(c), "nsca", what],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for c, what in ((central_conf, "server"), (intake_conf, "server"),
                             (intake_conf, "relay"))]
    try:
        wait_port(central_port)
        wait_port(intake_port)
        sent = client.send_results([CheckResult("sw1", f"svc{i}", 0, f"r{i}") for i in range(50)],
                                   host="127.0.0.1", port=intake_port, password="Zq9-pw")
        assert sent == 50
        assert len(wait_lines(cmd_file, 50)) == 50
        status = subprocess.run([BIN / "vigil", "-c", str(intake_conf), "nsca", "status",
                                 "--json"], capture_output=True, text=True, check=True)
        assert f'"nsca-127.0.0.1-{central_port}"' in status.stdout
    finally:
        results = [_stop(p) for p in reversed(procs)]
    for rc, err in results:
        assert rc == 0, err
        assert "signal 15: stopping" in err
        assert "Zq9" not in err  # the password never reaches a log line


def test_relay_without_destinations_idles(tmp_path: Path) -> None:
    conf = _conf(tmp_path, Relay_To_Command_File="No")
    p = subprocess.Popen([BIN / "vigil", "-c", str(conf), "nsca", "relay"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stderr is not None
    first = p.stderr.readline().decode()  # logged once the SIGTERM handler is in place
    assert "the relay idles" in first
    time.sleep(0.3)  # under test: an idle relay stays up (nothing to poll for)
    assert p.poll() is None
    rc, err = _stop(p)
    assert rc == 0, err


def test_bad_config_value_names_the_option(tmp_path: Path) -> None:
    conf = _conf(tmp_path, Encryption_Method=9)
    r = subprocess.run([BIN / "vigil", "-c", str(conf), "nsca", "server"], capture_output=True,
                       text=True)
    assert r.returncode == 2
    assert "[NSCA] Encryption_Method: '9' is not a supported encryption method" in r.stderr
    conf = _conf(tmp_path, Central_Servers="a:1,b:99999")
    r = subprocess.run([BIN / "vigil", "-c", str(conf), "nsca", "relay"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "port '99999' is not 1..65535" in r.stderr


def test_vigil_nsca_daemon_reads_nsca_cfg(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "cmd"
    out.touch()
    cfg = tmp_path / "nsca.cfg"
    cfg.write_text(f"# as Debian ships it, plus Vigil's additions\nserver_port={port}\n"
                   f"server_address=127.0.0.1\nnsca_user=nagios\ncommand_file={out}\n"
                   "password=pw\ndecryption_method=14\nmax_packet_age=30\n"
                   "allowed_hosts=127.0.0.1\n")
    p = subprocess.Popen([BIN / "vigil-nsca", "-c", str(cfg), "--single"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_port(port)
        r = run_send_nsca(port, "h\ts\t1\twarn\x17", tmp_path, method=14, password="pw")
        assert r.returncode == 0, r.stderr
        assert wait_lines(out, 1)[0].endswith("PROCESS_SERVICE_CHECK_RESULT;h;s;1;warn")
    finally:
        rc, err = _stop(p)
    assert rc == 0, err
    bad = tmp_path / "bad.cfg"
    bad.write_text("server_port=70000\n")
    r = subprocess.run([BIN / "vigil-nsca", "-c", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and "line 1: server_port='70000'" in r.stderr


def test_send_nsca_input_format() -> None:
    data = "web\tHTTP\t0\tOK\x17db\t2\tDOWN\n\x17\x17x\ty\x17h\ts\t1\tmulti\nline\tand tab\n"
    assert parse_input(data) == [
        CheckResult("web", "HTTP", 0, "OK"), CheckResult("db", None, 2, "DOWN"),
        CheckResult("h", "s", 1, "multi\nline\tand tab")]
    assert parse_input("a;b;0;c", delim=";", set_delim="\n") == [CheckResult("a", "b", 0, "c")]


def test_vigil_send_nsca_usage_and_unreachable(tmp_path: Path) -> None:
    r = subprocess.run([BIN / "vigil-send-nsca"], capture_output=True, text=True)
    assert r.returncode == 3 and "-H <host_address> is required" in r.stderr
    r = subprocess.run([BIN / "vigil-send-nsca", "-H", "127.0.0.1", "-p", str(free_port()),
                        "-to", "2"], input="h\ts\t0\tx\x17", capture_output=True, text=True)
    assert r.returncode == 2 and "Connection refused" in r.stderr


def test_vigil_nsca_send_dry_run(tmp_path: Path) -> None:
    conf = _conf(tmp_path)
    r = subprocess.run([BIN / "vigil", "-c", str(conf), "nsca", "send", "--host", "h",
                        "--service", "s", "--status", "2", "--output", "bad", "--dry-run"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "would send h;s;2;bad\n"
    r = subprocess.run([BIN / "vigil", "-c", str(conf), "nsca", "send", "--to",
                        f"127.0.0.1:{free_port()}", "--host", "h", "--status", "0"],
                       capture_output=True, text=True)
    assert r.returncode == 3 and "Connection refused" in r.stderr
    assert wait_until(lambda: True)


def test_shipped_sample_configs_work(tmp_path: Path) -> None:
    """etc/nsca/*.cfg: vigil-nsca takes nsca.cfg as shipped; the C nsca once the
    Vigil additions are removed; both send_nsca programs take send_nsca.cfg."""
    repo = Path(__file__).resolve().parents[2]
    text = (repo / "etc/nsca/nsca.cfg").read_text()
    port = free_port()
    out = tmp_path / "nagios.cmd"
    out.touch()
    text = (text.replace("server_port=5667", f"server_port={port}")
                .replace("/var/lib/nagios4/rw/nagios.cmd", str(out))
                .replace("/var/lib/nagios4/nsca.dump", str(tmp_path / "dump"))
                .replace("/run/vigil-nsca.pid", str(tmp_path / "pid")))
    cfg = tmp_path / "nsca.cfg"
    cfg.write_text(text)
    send_cfg = tmp_path / "send_nsca.cfg"
    send_cfg.write_text((repo / "etc/nsca/send_nsca.cfg").read_text())
    for prog in ("send_nsca", str(BIN / "vigil-send-nsca")):
        p = subprocess.Popen([BIN / "vigil-nsca", "-c", str(cfg)], stderr=subprocess.PIPE)
        try:
            wait_port(port)
            r = subprocess.run([prog, "-H", "127.0.0.1", "-p", str(port), "-c", str(send_cfg)],
                               input=b"h\ts\t0\tok\x17", capture_output=True, timeout=30)
            assert r.returncode == 0, r.stderr
        finally:
            assert _stop(p)[0] == 0
    assert len(wait_lines(out, 2)) == 2
    c_cfg = tmp_path / "c-nsca.cfg"
    keep = [ln for ln in text.splitlines()
            if ln.split("=")[0] not in ("allowed_hosts", "clock_skew", "spool_dir",
                                        "max_connections", "max_connections_per_source",
                                        "first_packet_timeout")]
    # append_to_file: the test reads a regular file, which "w" would truncate
    c_cfg.write_text("\n".join(keep) + "\nnsca_user=root\nnsca_group=root\nappend_to_file=1\n")
    p = subprocess.Popen(["/usr/sbin/nsca", "-f", "-c", str(c_cfg), "--single"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        r = subprocess.run(["send_nsca", "-H", "127.0.0.1", "-p", str(port), "-c",
                            str(send_cfg)], input=b"h\ts\t0\tok\x17", capture_output=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        assert len(wait_lines(out, 3)) == 3
    finally:
        p.terminate()
        p.wait(10)
