"""RADIUS round trips against a real FreeRADIUS (temp raddb on loopback ports)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.checks.checks_fixtures import SECRET, FreeRadius, run_check, write_config
from vigil.testing.ports import free_port

pytestmark = pytest.mark.integration  # real processes: vigil commands, servers, plugins


def radius_conf(tmp_path: Path, state_dir: Path, fr: FreeRadius, **self_test: str) -> Path:
    return write_config(tmp_path / "vigil.conf", state_dir, {
        "Radius": {"Host": "127.0.0.1", "Auth_Port": fr.auth_port, "Acct_Port": fr.acct_port},
        "Self Test": dict(self_test),
    })


def test_auth_accept_is_ok(tmp_path: Path, state_dir: Path, freeradius: FreeRadius) -> None:
    r = run_check("radius_auth", config=radius_conf(tmp_path, state_dir, freeradius))
    assert r.rc == 0, r
    assert r.line.startswith("RADIUS_AUTH OK: Access-Accept for 127.0.0.1")
    assert "| 'rtt'=" in r.line and r.line.count("\n") == 0


def test_auth_slower_than_threshold_warns(tmp_path: Path, state_dir: Path,
                                          freeradius: FreeRadius) -> None:
    r = run_check("radius_auth", "-w", "0.0000001", "-c", "10",
                  config=radius_conf(tmp_path, state_dir, freeradius))
    assert r.rc == 1, r
    assert "RADIUS_AUTH WARNING" in r.line and "warning above" in r.line


def test_auth_reject_is_critical(tmp_path: Path, state_dir: Path, freeradius: FreeRadius) -> None:
    conf = radius_conf(tmp_path, state_dir, freeradius, Password="wrong")
    r = run_check("radius_auth", config=conf)
    assert r.rc == 2, r
    assert "Access-Reject for 127.0.0.1" in r.line


def test_auth_wrong_secret_is_critical(tmp_path: Path, state_dir: Path,
                                       freeradius: FreeRadius) -> None:
    conf = radius_conf(tmp_path, state_dir, freeradius, Shared_Secret="not-" + SECRET)
    r = run_check("radius_auth", "-t", "2", config=conf)
    # FreeRADIUS drops a request whose Message-Authenticator fails: no answer
    assert r.rc == 2, r
    assert "RADIUS_AUTH CRITICAL" in r.line
    assert SECRET not in r.out + r.err


def test_auth_nothing_listening_is_critical(tmp_path: Path, state_dir: Path) -> None:
    port = free_port(socket.SOCK_DGRAM)
    conf = write_config(tmp_path / "vigil.conf", state_dir,
                        {"Radius": {"Auth_Port": port}})
    r = run_check("radius_auth", "-t", "2", config=conf)
    assert r.rc == 2, r
    assert "connection refused" in r.line


def test_auth_silent_server_times_out_critical(tmp_path: Path, state_dir: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # bound, never answers
        conf = write_config(tmp_path / "vigil.conf", state_dir,
                            {"Radius": {"Auth_Port": silent.getsockname()[1]}})
        r = run_check("radius_auth", "-t", "1", config=conf)
    assert r.rc == 2, r
    assert "no answer" in r.line or "timeout" in r.line


def test_acct_round_trip_is_ok(tmp_path: Path, state_dir: Path, freeradius: FreeRadius) -> None:
    r = run_check("radius_acct", config=radius_conf(tmp_path, state_dir, freeradius))
    assert r.rc == 0, r
    assert r.line.startswith("RADIUS_ACCT OK: Accounting-Response for 127.0.0.1")


def test_acct_wrong_secret_is_critical(tmp_path: Path, state_dir: Path,
                                       freeradius: FreeRadius) -> None:
    conf = radius_conf(tmp_path, state_dir, freeradius, Shared_Secret="other")
    r = run_check("radius_acct", "-t", "2", config=conf)
    assert r.rc == 2, r
