"""A running `vigil radiusd` under a burst of hostile datagrams (issue 9).

More than 20,000 malformed datagrams of every class (truncated attributes,
length fields that lie, bad codes, oversize, bad authenticators, unknown
NAS, mutated valid packets, random bytes) at the auth and acct ports, with
valid requests interleaved. The engine must stay up, answer the valid ones,
write no traceback and only a bounded number of log lines.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyrad import packet as rp

from billing.server import load_dictionary
from billing.testing import BillingSandbox
from vigil.testing.radius_fuzz import CRAFTED, Fuzzer, access_request, accounting_stop, ask
from vigil.testing.wait import poll, wait_until

pytestmark = pytest.mark.integration  # a live engine under a hostile flood

SECRET = b"nextone"
NAS = "164.4.89.20"
DICT = load_dictionary()
FUZZ_TOTAL = 21_000
BURST = 100  # fuzz datagrams between two valid requests


def radius_drops(box: BillingSandbox, state: Path) -> subprocess.CompletedProcess[str]:
    """The real check plugin, reading the engine's stats file."""
    return subprocess.run([sys.executable, "-m", "checks.radius_drops", "--config",
                           str(box.config), "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=30)


def test_a_burst_of_hostile_datagrams_leaves_the_engine_up_answering_and_quiet(tmp_path):
    with BillingSandbox(base=tmp_path / "engine") as box:
        proc = box.proc
        assert proc is not None
        start_lines = len(box.log_text().splitlines())
        stats_path = box.state / "radiusd-stats.json"
        wait_until(stats_path.exists, 10, 0.1, what="the engine wrote its stats file")
        baseline = radius_drops(box, tmp_path / "checks")
        assert baseline.returncode == 0, baseline.stdout + baseline.stderr
        fuzz = Fuzzer(DICT, SECRET, NAS, seed=9)
        valid = answered = sent = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bad, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as good:
            # The one-datagram kill, first, at both ports.
            bad.sendto(CRAFTED, ("127.0.0.1", box.auth_port))
            bad.sendto(b"\x04" + CRAFTED[1:], ("127.0.0.1", box.acct_port))
            sent += 2
            started = time.monotonic()
            i = 0
            deadline = started + 90
            while sent < FUZZ_TOTAL:
                assert proc.poll() is None, f"the engine died after {sent} datagrams"
                assert time.monotonic() < deadline, f"only {sent} datagrams sent in 90 s"
                for _ in range(BURST):
                    is_auth = fuzz.rnd.random() < 0.5
                    data = fuzz.next(is_auth)
                    bad.sendto(data, ("127.0.0.1", box.auth_port if is_auth else box.acct_port))
                    sent += 1
                i += 1
                is_auth = i % 2 == 0
                # a conf-id that tries to forge a log line: escaped, not obeyed
                conf = f"valid-{i}" if is_auth else f"valid-{i}\n2026 FORGED\x1b[31m"
                request = (access_request(DICT, SECRET, conf, NAS) if is_auth
                           else accounting_stop(DICT, SECRET, conf, NAS))
                reply = ask(good, request,
                            ("127.0.0.1", box.auth_port if is_auth else box.acct_port))
                valid += 1
                if reply is not None:
                    expected = (rp.AccessAccept, rp.AccessReject) if is_auth else (
                        rp.AccountingResponse,)
                    assert reply[0] in expected
                    answered += 1
            elapsed = time.monotonic() - started
        assert proc.poll() is None, "the engine died"
        assert box.selftest(timeout=2)
        print(f"\n{sent} hostile datagrams and {valid} valid requests in {elapsed:.1f} s; "
              f"{answered} answered")
        assert answered >= 0.95 * valid
        # counted for the radius_drops plugin (the stats file is rewritten every second)
        stats: dict = {}

        def counted() -> bool:
            nonlocal stats
            stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
            return sum(v for k, v in stats.items() if k.startswith("dropped_")) >= 0.95 * sent

        assert poll(counted, 10, 0.2), stats
        assert stats.get("dropped_internal_error", 0) == 0, stats
        check = radius_drops(box, tmp_path / "checks")
        assert check.returncode == 2 and " malformed" in check.stdout, check.stdout
        assert box.stop() == 0
        log = box.log_text()
        stderr = (box.base / "radiusd.stderr").read_text()
        assert "Traceback" not in log and "Traceback" not in stderr
        lines = log.splitlines()[start_lines:]
        # valid requests log their call (conf=valid-N); everything else is
        # what the hostile traffic cost in log lines
        other = [ln for ln in lines if "conf=valid-" not in ln]
        print(f"{len(lines)} log lines, {len(other)} not about a valid call")
        assert len(other) <= 300, "\n".join(other[:50])
        summaries = [ln for ln in other if "packets from 127.0.0.1" in ln]
        assert summaries and "malformed" in summaries[0]
        assert all("\x1b" not in ln for ln in lines)
