"""The source's NexTone call through a real `radclient` against `vigil radiusd`.

Every test here runs twice: on SQLite and on a real MariaDB.
"""

from __future__ import annotations

import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from billing import models as m
from billing.db import engine_for_url

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("radclient") is None,
                                reason="radclient missing: run `make setup`")

DEMO = ROOT / "etc" / "demo"
# The source's call, as shipped for admins to replay with radclient (README).
AUTH = (DEMO / "nextone-1-authentication.txt").read_text()
AUTHZ = (DEMO / "nextone-2-authorization.txt").read_text()
STOP_ORIGINATE = (DEMO / "nextone-3-stop-originate.txt").read_text()
STOP_ANSWER = (DEMO / "nextone-4-stop-answer.txt").read_text()


def radclient(box, kind: str, body: str, secret: str = "nextone", tries: int = 1,
              timeout: float = 2.0) -> subprocess.CompletedProcess[str]:
    secret_file = box.base / f"secret-{secret}"
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    port = box.auth_port if kind == "auth" else box.acct_port
    return subprocess.run(
        ["radclient", "-d", str(ROOT / "etc" / "radius"), "-x", "-r", str(tries),
         "-t", str(timeout), "-S", str(secret_file), f"127.0.0.1:{port}", kind],
        input=body, text=True, capture_output=True, timeout=60)


def totals(box):
    engine = engine_for_url(box.db_url)
    with engine.connect() as c:
        acct = c.execute(select(func.count(), func.coalesce(func.sum(m.AccountXDR.amount), 0))
                         ).one()
        vend = c.execute(select(func.count(), func.coalesce(func.sum(m.VendorXDR.amount), 0))
                         ).one()
        bal = c.execute(select(m.Account.balance).where(
            m.Account.account_id == "193.100.201.1")).scalar_one()
    engine.dispose()
    return (acct[0], Decimal(acct[1])), (vend[0], Decimal(vend[1])), Decimal(bal)


def test_the_source_nextone_call(sandbox):
    r = radclient(sandbox, "auth", AUTH)
    assert "Access-Accept" in r.stdout, r.stdout + r.stderr
    assert 'h323-credit-amount = "1.02"' in r.stdout
    assert 'h323-return-code = "0"' in r.stdout
    assert 'h323-currency = "USD"' in r.stdout
    assert 'h323-preferred-lang = "en"' in r.stdout
    assert 'h323-billing-model = "1"' in r.stdout

    r = radclient(sandbox, "auth", AUTHZ)
    assert "Access-Accept" in r.stdout, r.stdout + r.stderr
    assert 'h323-credit-time = "180"' in r.stdout

    r = radclient(sandbox, "acct", STOP_ORIGINATE)
    assert "Accounting-Response" in r.stdout, r.stdout + r.stderr
    r = radclient(sandbox, "acct", STOP_ANSWER)
    assert "Accounting-Response" in r.stdout, r.stdout + r.stderr

    (n_acct, acct_sum), (n_vend, vend_sum), balance = totals(sandbox)
    assert (n_acct, acct_sum) == (1, Decimal("0.57"))
    assert (n_vend, vend_sum) == (1, Decimal("0.27"))
    assert balance == Decimal("0.45")
    log = sandbox.log_text()
    assert "conf=1043-3366331310-596453@ssl.supertelecom.net" in log
    assert "Translation 's/^4412//' applied: '441259322891834' -> '59322891834'" in log
    assert "Found connection" in log and "'BTS'" in log
    assert "nextone" not in log.replace("NextoneUser", "")  # the shared secret is not logged

    out = sandbox.vigil("cdr", "list", "--json").stdout
    assert '"amount": "0.57000"' in out


def test_repeated_stop_never_charges_twice(sandbox):
    for _ in range(3):  # the gateway re-sends the same Stop (new RADIUS id each time)
        r = radclient(sandbox, "acct", STOP_ORIGINATE)
        assert "Accounting-Response" in r.stdout
    (n_acct, acct_sum), (n_vend, _), balance = totals(sandbox)
    assert (n_acct, acct_sum, n_vend, balance) == (1, Decimal("0.57"), 1, Decimal("0.45"))


def test_wrong_secret_gets_no_answer_and_charges_nothing(sandbox):
    r = radclient(sandbox, "acct", STOP_ORIGINATE, secret="not-the-secret", timeout=0.5)
    assert "Accounting-Response" not in r.stdout
    r = radclient(sandbox, "auth", AUTHZ.replace("User-Password", "Message-Authenticator = 0x00\n"
                                                "User-Password"), secret="wrong", timeout=0.5)
    assert "Access-Accept" not in r.stdout and "Access-Reject" not in r.stdout
    assert totals(sandbox)[0] == (0, Decimal(0))
    assert "bad authenticator" in sandbox.log_text()


def test_unknown_nas_is_dropped_silently(sandbox):
    r = radclient(sandbox, "auth", AUTH.replace("164.4.89.20", "10.9.9.9"), timeout=0.5)
    assert "Received" not in r.stdout
    assert "unknown client" in sandbox.log_text()


def test_message_authenticator_is_checked_and_returned(sandbox):
    r = radclient(sandbox, "auth", "Message-Authenticator = 0x00\n" + AUTH)
    assert "Access-Accept" in r.stdout, r.stdout + r.stderr
    assert "Message-Authenticator" in r.stdout


def test_refusals_carry_ciscos_return_codes(sandbox):
    r = radclient(sandbox, "auth", AUTH.replace("PortaBilling_UserName:193.100.201.1",
                                                "PortaBilling_UserName:nobody"))
    assert "Access-Reject" in r.stdout and 'h323-return-code = "1"' in r.stdout
    # an ANI account with a password: an ANI typed as a PIN (no password) fails
    body = AUTH.replace("193.100.201.1", "4202111222").replace(
        'Cisco-AVPair = "h323-ivr-out=PortaBilling_Ignore_Password:YES"\n', "")
    r = radclient(sandbox, "auth", body)
    assert "Access-Reject" in r.stdout and 'h323-return-code = "2"' in r.stdout
    r = radclient(sandbox, "auth", body.replace('"nextone"', '"s3cret"'))
    assert "Access-Accept" in r.stdout
    r = radclient(sandbox, "auth", AUTHZ.replace("441259322891834", "19005551212"))
    assert "Access-Reject" in r.stdout and 'h323-return-code = "9"' in r.stdout


def test_self_test_account_touches_nothing(sandbox):
    body = 'NAS-IP-Address = 127.0.0.1\nUser-Name = "127.0.0.1"\nUser-Password = "cisco"\n'
    r = radclient(sandbox, "auth", body, secret="SecretKey")
    assert "Access-Accept" in r.stdout
    r = radclient(sandbox, "auth", body.replace("cisco", "wrong"), secret="SecretKey")
    assert "Access-Reject" in r.stdout
    acct = ('NAS-IP-Address = 127.0.0.1\nUser-Name = "127.0.0.1"\nAcct-Status-Type = Stop\n'
            'Acct-Session-Time = 60\nAcct-Session-Id = "selftest"\n')
    r = radclient(sandbox, "acct", acct, secret="SecretKey")
    assert "Accounting-Response" in r.stdout
    assert totals(sandbox)[0] == (0, Decimal(0))
