"""The test house keeps its promises: servers die with a killed run; tiers are checked.

A pytest run is started inside this test on a small test file whose fixture
starts real servers: a FreeRADIUS (a direct child, ended by the parent-death
signal) and a daemon that forks away into a session of its own (which only
the reaper can find). The inner run is killed with SIGKILL while the fixture
is up, as a time-out would; nothing it started may survive.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vigil.processes import pid_alive
from vigil.testing import reaper
from vigil.testing.binaries import MissingBinary, is_known_missing
from vigil.testing.wait import wait_until

ROOT = Path(__file__).resolve().parents[1]

INNER = '''
import os, subprocess, time
from pathlib import Path

import pytest

from vigil.testing.freeradius import start_freeradius
from vigil.testing.mariadb import MariaDB

PIDS = Path(__file__).with_name("pids")


@pytest.fixture
def servers():
    db = MariaDB("session", server_id=100).start()
    fr = start_freeradius("s3cret", "", prefix="vigil-checks-freeradius-")
    # a daemon: forks, the child leaves for a session of its own, the parent exits
    subprocess.run(["setsid", "-f", "sleep", "600"], check=True)
    # this run's own tag is the last one (the outer run's comes first)
    token = os.environ['VIGIL_TEST_SESSION'].split()[-1]
    PIDS.write_text(f"{db.proc.pid} {fr.proc.pid} {token}\\n")
    yield fr
    fr.stop()
    db.destroy()


def test_hangs_with_servers_up(servers):
    time.sleep(600)  # the outer test kills this run here
'''


def _start_inner(tmp_path: Path) -> subprocess.Popen[bytes]:
    (tmp_path / "test_inner.py").write_text(INNER)
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p vigil.testing.session\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(tmp_path / "test_inner.py")], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.integration
def test_kill_9_of_a_pytest_run_leaves_no_server(tmp_path: Path) -> None:
    """A throw-away MariaDB (vigil-session-*), a FreeRADIUS (vigil-checks-freeradius-*)
    and a forked-away daemon, all up in a fixture when its pytest is killed."""
    inner = _start_inner(tmp_path)
    pids = tmp_path / "pids"
    try:
        wait_until(lambda: pids.exists() and pids.read_text().endswith("\n"), 120,
                   what="the inner run's fixture started its servers")
        db_text, radiusd_text, token = pids.read_text().split()
        mariadbd, radiusd = int(db_text), int(radiusd_text)
        def three_tagged() -> dict[int, str]:
            found = reaper.tagged(token)
            return found if len(found) >= 3 else {}

        tagged = wait_until(three_tagged, 10,
                            what="the servers and the daemon carry the session's tag")
        assert {mariadbd, radiusd} <= set(tagged)
        assert "vigil-session-" in tagged[mariadbd]
        assert "vigil-checks-freeradius-" in tagged[radiusd]
        assert any(cmd.startswith("sleep 600") for cmd in tagged.values())
    finally:
        inner.send_signal(signal.SIGKILL)
        inner.wait(10)
    wait_until(lambda: not any(pid_alive(p) for p in tagged), 20,
               what="every server of the killed run ended")
    wait_until(lambda: not reaper.tagged(token), 20,
               what="no process of the killed run is left")


@pytest.mark.integration
def test_a_child_of_a_dead_parent_is_signalled(tmp_path: Path) -> None:
    """die_with_parent: the grandchild dies when its parent (not pytest) is killed."""
    out = tmp_path / "pid"
    script = textwrap.dedent(f"""
        import subprocess, sys, time
        from vigil.testing.reaper import die_with_parent
        p = subprocess.Popen(["sleep", "600"], preexec_fn=die_with_parent)
        open({str(out)!r}, "w").write(str(p.pid))
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ,
                              PYTHONPATH=str(ROOT)))
    try:
        wait_until(lambda: out.exists() and out.read_text(), 30, what="the child started")
        child = int(out.read_text())
        assert pid_alive(child)
    finally:
        parent.kill()
        parent.wait(10)
    wait_until(lambda: not pid_alive(child), 10, what="the child ended with its parent")


@pytest.mark.integration
def test_a_clean_run_that_leaves_a_process_fails(tmp_path: Path) -> None:
    """The session-end check: a forgotten process fails an otherwise green run."""
    (tmp_path / "test_forgets.py").write_text(
        "import subprocess\n\n"
        "def test_forgets_its_server():\n"
        "    subprocess.Popen(['sleep', '300'], start_new_session=True)\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p vigil.testing.session\n"
                                         "vigil_leftover_grace = 1\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "test_forgets.py"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert "1 passed" in r.stdout, r.stdout
    assert "leftover processes" in r.stdout and "sleep 300" in r.stdout, r.stdout
    assert r.returncode == 1, r.stdout


def test_a_missing_debian_program_is_named_with_its_package() -> None:
    gone = FileNotFoundError(2, "No such file or directory", "/nonexistent/sbin/nagios4")
    assert is_known_missing(gone) == \
        "nagios4 is not installed (Debian package nagios4-core; make setup)"
    assert is_known_missing(MissingBinary("send_nsca")) is not None
    # a missing file that is not a known program is a bug, not a skip
    assert is_known_missing(FileNotFoundError(2, "No such file", "/etc/vigil.conf")) is None
    assert is_known_missing(ValueError("nagios4")) is None


@pytest.mark.integration
def test_a_missing_program_skips_the_test_that_needs_it(tmp_path: Path) -> None:
    (tmp_path / "test_needs.py").write_text(
        "import subprocess\n\nimport pytest\n\n"
        "@pytest.fixture\n"
        "def nagios():\n"
        "    subprocess.Popen(['/nonexistent/sbin/nagios4'])\n\n"
        "def test_needs_nagios(nagios):\n"
        "    pass\n\n"
        "def test_needs_radclient():\n"
        "    subprocess.run(['/nonexistent/bin/radclient'])\n\n"
        "def test_a_typo_still_errors():\n"
        "    open('/nonexistent/etc/vigil.conf')\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -rs -p vigil.testing.session\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "test_needs.py"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert "1 failed, 2 skipped" in r.stdout, r.stdout
    assert "nagios4 is not installed (Debian package nagios4-core" in r.stdout, r.stdout
    assert "radclient is not installed (Debian package freeradius-utils" in r.stdout, r.stdout


def test_unit_tier_refuses_sockets() -> None:
    """This test is unit (no marker, no server fixture): the guard makes that true."""
    import socket

    with socket.socket() as s, pytest.raises(AssertionError, match="mark it integration"):
        s.bind(("127.0.0.1", 0))
    with pytest.raises(AssertionError, match="started a process"):
        subprocess.run(["true"])
    with pytest.raises(AssertionError, match="started a process"):
        os.fork()


@pytest.mark.integration
def test_free_port_never_hands_out_one_port_twice() -> None:
    """Two servers built before either starts (a master, its replica) got the same
    port from the kernel once in CI; the second then "started" by reaching the first."""
    from vigil.testing.ports import free_port, free_udp_port

    tcp = [free_port() for _ in range(3000)]
    udp = [free_udp_port() for _ in range(500)]
    assert len(set(tcp)) == len(tcp)
    assert len(set(udp)) == len(udp)


@pytest.mark.integration
def test_a_mariadb_whose_port_is_held_by_another_does_not_start() -> None:
    from vigil.testing.mariadb import MariaDB

    with MariaDB("holder", server_id=31) as holder:
        second = MariaDB("squatter", port=holder.port, server_id=32)
        try:
            with pytest.raises(RuntimeError, match="another server|exited"):
                second.start()
            assert second.proc is not None and second.proc.poll() is not None
        finally:
            second.destroy()
        assert holder.execute("SELECT @@server_id") == [(31,)]
