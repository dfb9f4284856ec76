"""Alerts: templates, the flood limit (persisted), and SMTP servers that misbehave.

Every SMTP server here is real: the aiosmtpd sink, an aiosmtpd server that
refuses the recipient, a closed port, and a socket that accepts and then
says nothing (a hung server).
"""

from __future__ import annotations

import logging
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from radcheck import mail
from tests.radcheck.radcheck_peers import VIGIL, base_conf, write_conf
from vigil import alerts, config
from vigil.testing.ports import free_port, free_udp_port
from vigil.testing.smtp import SMTPSink


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_cfg(tmp_path: Path, smtp_port: int, **email: object) -> config.Config:
    sections = base_conf(tmp_path, radius_port=free_udp_port(), smtp_port=smtp_port,
                         extra={"Email": {"SMTP_Timeout_sec": 1, **email}})
    return config.load(write_conf(tmp_path / "vigil.conf", sections))


# ------------------------------------------------------------- the limiter

def test_limiter_holds_back_after_max_and_summarises_in_next() -> None:
    clock = Clock()
    lim = alerts.FloodLimiter(None, 5, 450, clock)
    tickets = [lim.admit(f"alert {i}") for i in range(20)]
    assert sum(t is not None for t in tickets) == 5
    assert lim.held().count == 15
    clock.now += 449
    assert lim.admit("still inside the window") is None
    clock.now += 2  # the first five are now older than Look_Behind_sec
    ticket = lim.admit("after the window")
    assert ticket is not None
    assert ticket.held.count == 16
    assert ticket.held.subjects[:2] == ["alert 5", "alert 6"]
    assert len(ticket.held.subjects) == alerts.MAX_HELD_SUBJECTS
    assert not lim.held()  # the summary travels with the ticket


def test_undelivered_mail_returns_its_slot_and_its_summary() -> None:
    clock = Clock()
    lim = alerts.FloodLimiter(None, 1, 60, clock)
    lim.admit("a")
    assert lim.admit("b") is None
    clock.now += 61
    ticket = lim.admit("c")
    assert ticket is not None and ticket.held.count == 1
    lim.settle(ticket, delivered=False, subject="c")
    held = lim.held()
    assert (held.count, held.undelivered) == (1, 1)
    assert lim.admit("d") is not None  # the slot came back


def test_limiter_memory_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "flood.json"
    clock = Clock()
    for i in range(7):
        alerts.FloodLimiter(path, 5, 450, clock).admit(f"alert {i}")  # a new process each time
    assert alerts.FloodLimiter(path, 5, 450, clock).held().count == 2


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_corrupt_limiter_state_is_reported_and_replaced(tmp_path: Path, caplog,
                                                       content: str) -> None:
    path = tmp_path / "flood.json"
    path.write_text(content)
    with caplog.at_level(logging.ERROR):
        assert alerts.FloodLimiter(path, 5, 450).admit("x") is not None
    assert "flood limiter state unreadable" in caplog.text


# ---------------------------------------------------------------- sending

def test_twenty_alerts_in_the_window_give_max_mails_then_a_summary(
        tmp_path: Path, smtp: SMTPSink) -> None:
    cfg = make_cfg(tmp_path, smtp.port)
    clock = Clock()
    lim = alerts.limiter_for(cfg, clock)
    sent = [alerts.send_alert(cfg, f"outage {i}", "body\n", limiter=lim) for i in range(20)]
    assert sent.count(True) == 5
    assert len(smtp.wait_for(5)) == 5
    clock.now += 451
    assert alerts.send_alert(cfg, "recovered", "engine answers again\n", limiter=lim)
    msgs = smtp.wait_for(6)
    assert len(msgs) == 6
    last = msgs[-1]
    assert last["Subject"] == "recovered"
    assert last["To"] == "oncall@example.com" and last["From"] == "vigil@example.com"
    body = last.get_content()
    assert "15 alert(s) held back by the e-mail flood limit (5 per 450 s)" in body
    assert "  - outage 5" in body and "... and 5 more" in body


def test_unlimited_alerts_bypass_the_limit(tmp_path: Path, smtp: SMTPSink) -> None:
    cfg = make_cfg(tmp_path, smtp.port, Max_Sequential_Emails=1)
    assert all(alerts.send_alert(cfg, f"n{i}", "b", rate_limited=False) for i in range(3))
    assert len(smtp.wait_for(3)) == 3


def test_smtp_refusing_connections_fails_fast_and_is_summarised_later(
        tmp_path: Path, smtp: SMTPSink, caplog) -> None:
    closed = free_port()
    cfg_down = make_cfg(tmp_path, closed)
    with caplog.at_level(logging.ERROR):
        outcome = alerts.send_alert_outcome(cfg_down, "outage", "x")
    assert outcome == alerts.FAILED
    assert f"SMTP 127.0.0.1:{closed}: cannot connect" in caplog.text
    cfg_up = make_cfg(tmp_path, smtp.port)  # same state folder, SMTP back
    assert alerts.send_alert(cfg_up, "recovered", "y")
    body = smtp.wait_for(1)[0].get_content()
    assert "1 could not be delivered" in body and "  - outage" in body


class _RefuseRecipient:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        return "550 5.1.1 no such mailbox here"


@pytest.mark.integration
def test_smtp_refusing_the_recipient_is_a_logged_failure(tmp_path: Path, caplog) -> None:
    port = free_port()
    ctl = Controller(_RefuseRecipient(), hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        cfg = make_cfg(tmp_path, port)
        with caplog.at_level(logging.ERROR):
            assert alerts.send_alert_outcome(cfg, "outage", "x") == alerts.FAILED
    finally:
        ctl.stop()
    assert "550 5.1.1 no such mailbox here" in caplog.text


@pytest.fixture
def hung_smtp() -> Iterator[int]:
    """Accepts TCP connections and never says a word."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    yield srv.getsockname()[1]
    srv.close()


@pytest.mark.integration
def test_hung_smtp_times_out(tmp_path: Path, hung_smtp: int, caplog) -> None:
    cfg = make_cfg(tmp_path, hung_smtp)
    with caplog.at_level(logging.ERROR):
        assert alerts.send_alert_outcome(cfg, "outage", "x") == alerts.FAILED
    assert "timed out" in caplog.text


@pytest.mark.integration
def test_worker_never_blocks_on_a_hung_smtp(tmp_path: Path, hung_smtp: int) -> None:
    cfg = make_cfg(tmp_path, hung_smtp)
    worker = alerts.AlertWorker(cfg, maxsize=2).start()
    accepted = [worker.submit(f"alert {i}", "x") for i in range(5)]
    # the sender hangs on the first; two more wait; the rest are dropped, never waited for
    assert accepted[:2] == [True, True] and accepted[-1] is False
    assert worker.close(timeout=0.1) >= 2
    assert worker.sent == 0


def test_worker_delivers_in_order(tmp_path: Path, smtp: SMTPSink) -> None:
    cfg = make_cfg(tmp_path, smtp.port)
    worker = alerts.AlertWorker(cfg).start()
    for s in ("one", "two", "three"):
        worker.submit(s, "x", kind="test")
    assert worker.close(timeout=10) == 0
    msgs = smtp.wait_for(3)
    assert [m["Subject"] for m in msgs] == ["one", "two", "three"]
    assert msgs[0]["X-Vigil-Kind"] == "test" and msgs[0]["X-Vigil-Host"] == "vigil-test"


# -------------------------------------------------------------- templates

def test_templates_from_the_folder(tmp_path: Path, smtp: SMTPSink) -> None:
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    (tpl / "radcheck_outage.txt").write_text("Subject: DOWN $host\n\nfailures=$failures\n")
    cfg = make_cfg(tmp_path, smtp.port, Mail_Templates_Dir=tpl)
    subject, body = alerts.render(cfg, "radcheck_outage", mail.TEMPLATES[mail.OUTAGE],
                                  failures=3)
    assert subject == "DOWN vigil-test" and body == "failures=3\n"


def test_missing_template_falls_back_to_builtin(tmp_path: Path, smtp: SMTPSink,
                                                caplog) -> None:
    cfg = make_cfg(tmp_path, smtp.port, Mail_Templates_Dir=tmp_path / "nowhere")
    with caplog.at_level(logging.WARNING):
        subject, _ = alerts.render(cfg, mail.RECOVERY, mail.TEMPLATES[mail.RECOVERY])
    assert subject == "[Vigil test] RADIUS self-test OK again on vigil-test"
    assert "using the built-in text" in caplog.text


def test_shipped_templates_match_builtin() -> None:
    shipped = Path(__file__).resolve().parents[2] / "etc" / "Mail_Templates"
    for name, text in (alerts.DEFAULT_TEMPLATES | mail.TEMPLATES).items():
        assert (shipped / f"{name}.txt").read_text() == text


def test_subject_newlines_cannot_inject_headers(tmp_path: Path, smtp: SMTPSink) -> None:
    cfg = make_cfg(tmp_path, smtp.port)
    assert alerts.send_alert(cfg, "a\nBcc: evil@example.com", "x")
    msg = smtp.wait_for(1)[0]
    assert msg["Bcc"] is None and msg["Subject"] == "a Bcc: evil@example.com"


# ------------------------------------------------------ vigil alert send

def test_cli_sends_beyond_the_limit_are_held(tmp_path: Path, smtp: SMTPSink) -> None:
    cfg = make_cfg(tmp_path, smtp.port, Max_Sequential_Emails=3)
    codes = []
    for i in range(8):  # each a new process: the limit lives in the state file
        r = subprocess.run([VIGIL, "-c", cfg.source, "alert", "send", "--subject", f"n{i}"],
                           input="service CRITICAL\n", capture_output=True, text=True,
                           timeout=30)
        codes.append(r.returncode)
        if r.returncode:
            assert "held back by the flood limit" in r.stderr
    assert codes.count(0) == 3 and codes.count(1) == 5
    smtp.wait_for(4, timeout=1)
    assert len(smtp.messages) == 3


def test_cli_bad_input(tmp_path: Path, smtp: SMTPSink) -> None:
    cfg = make_cfg(tmp_path, smtp.port)
    base = [VIGIL, "-c", cfg.source, "alert", "send", "--subject", "s"]
    r = subprocess.run(base, input="", capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "body (stdin) is empty" in r.stderr
    r = subprocess.run(base + ["--to", "root"], input="x", capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2 and "not a fully qualified e-mail address" in r.stderr
    r = subprocess.run(base + ["--to", "noc@example.org", "--no-rate-limit"], input="x",
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    assert smtp.wait_for(1)[0]["To"] == "noc@example.org"


def test_unusable_limiter_state_fails_open(tmp_path: Path, smtp: SMTPSink, caplog) -> None:
    (tmp_path / "file").write_text("x")
    cfg = make_cfg(tmp_path, smtp.port, Flood_State_File=tmp_path / "file" / "flood.json")
    with caplog.at_level(logging.ERROR):
        assert alerts.send_alert(cfg, "outage", "x")
    assert "not limiting this alert" in caplog.text
    assert len(smtp.wait_for(1)) == 1
