"""`vigil account adjust`: top-ups and charges, audited, one transaction (SQLite and MariaDB)."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from billing import models as m
from billing.adjustments import AdjustmentError, adjust, history, parse_amount
from billing.provision import apply_document, load_document

ROOT = Path(__file__).resolve().parents[2]
DEMO = load_document(ROOT / "etc" / "demo" / "provision.yaml")
DEBIT, CREDIT = "193.100.201.1", "4202111222"


def balances(db) -> dict[str, Decimal]:
    with db.connect() as c:
        rows = c.execute(select(m.Account.account_id, m.Account.balance)).all()
        cust = c.execute(select(m.Customer.name, m.Customer.balance)).all()
    return {**{a: Decimal(b) for a, b in rows}, **{f"customer:{n}": Decimal(b) for n, b in cust}}


def test_parse_amount_table() -> None:
    assert parse_amount("10") == Decimal("10")
    assert parse_amount("+10.50") == Decimal("10.50")
    assert parse_amount("-3.2") == Decimal("-3.2")
    for bad in ("0", "abc", "NaN", "1.000001", "1e9", "inf"):
        with pytest.raises(AdjustmentError):
            parse_amount(bad)


def test_top_up_and_charge_are_audited_in_one_transaction(db) -> None:
    apply_document(db, DEMO)
    before = balances(db)
    up = adjust(db, DEBIT, Decimal("5"), "demo reset after replay", actor="alice")
    assert (up.balance_before, up.balance_after) == (before[DEBIT], before[DEBIT] + 5)
    down = adjust(db, DEBIT, Decimal("-0.52"), "manual correction", actor="bob")
    assert down.balance_after == before[DEBIT] + Decimal("4.48")
    assert balances(db)[DEBIT] == before[DEBIT] + Decimal("4.48")
    # credit account: a top-up (payment) lowers what it and its customer owe
    adjust(db, CREDIT, Decimal("20"), "payment received", actor="carol")
    after = balances(db)
    assert after[CREDIT] == before[CREDIT] - 20
    assert after["customer:SmartNET"] == before["customer:SmartNET"] - 20
    rows = history(db, DEBIT)
    assert rows is not None
    assert [(r["kind"], r["funds_change"], r["by"], r["detail"]) for r in rows] == [
        ("charge", Decimal("-0.52"), "bob", "manual correction"),
        ("top-up", Decimal("5"), "alice", "demo reset after replay")]
    assert history(db, "no-such") is None


def test_dry_run_and_refusals_write_nothing(db) -> None:
    apply_document(db, DEMO)
    before = balances(db)
    adj = adjust(db, DEBIT, Decimal("7"), "check", actor="alice", dry_run=True)
    assert adj.balance_after == before[DEBIT] + 7 and adj.adjustment_id is None
    with pytest.raises(AdjustmentError, match="no account"):
        adjust(db, "nobody", Decimal("1"), "x")
    with pytest.raises(AdjustmentError, match="reason"):
        adjust(db, DEBIT, Decimal("1"), "   ")
    assert balances(db) == before
    with db.connect() as c:
        assert c.execute(select(func.count()).select_from(m.AccountAdjustment)).scalar_one() == 0


@pytest.mark.integration
def test_cli_adjust_history_and_cdr_list_json(tmp_path: Path) -> None:
    conf = tmp_path / "vigil.conf"
    conf.write_text(f"[Site]\nState_Dir={tmp_path}\n[Master]\nURL=sqlite:///billing.db\n")
    conf.chmod(0o600)

    def vigil(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vigil.cli", "-c", str(conf), *args],
                              capture_output=True, text=True, timeout=120, check=False)

    assert vigil("db", "upgrade").returncode == 0
    assert vigil("provision", str(ROOT / "etc" / "demo" / "provision.yaml")).returncode == 0
    dry = vigil("account", "adjust", DEBIT, "10", "--reason", "top up", "--dry-run")
    assert dry.returncode == 0 and "would apply top-up of 10" in dry.stdout
    assert "1.02000 -> 11.02000" in dry.stdout
    done = vigil("account", "adjust", DEBIT, "-1", "--reason", "fee", "--json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["account_id"] == DEBIT and body["amount"] == "-1" and body["balance_after"]
    assert vigil("account", "adjust", DEBIT, "x", "--reason", "r").returncode == 2
    assert vigil("account", "adjust", "nobody", "1", "--reason", "r").returncode == 1
    hist = json.loads(vigil("account", "history", DEBIT, "--json").stdout)
    assert [(h["kind"], Decimal(h["funds_change"]), h["detail"]) for h in hist] == [
        ("charge", Decimal(-1), "fee")]
    shown = json.loads(vigil("account", "show", DEBIT, "--json").stdout)
    assert Decimal(shown["balance"]) == Decimal("0.02")
    assert json.loads(vigil("cdr", "list", "--json").stdout) == []


@pytest.mark.integration
def test_reset_demo_restores_opening_balances_once(tmp_path: Path) -> None:
    conf = tmp_path / "vigil.conf"
    conf.write_text(f"[Site]\nState_Dir={tmp_path}\n[Master]\nURL=sqlite:///billing.db\n")
    from billing import schema
    from billing.db import engine_for_url

    db = engine_for_url(f"sqlite:///{tmp_path / 'billing.db'}")
    schema.upgrade(db)
    apply_document(db, DEMO)
    adjust(db, DEBIT, Decimal("-3"), "overdrawn by a replay", actor="demo")
    adjust(db, CREDIT, Decimal("-7"), "calls", actor="demo")

    def reset() -> str:
        r = subprocess.run([str(ROOT / "scripts" / "reset-demo.sh"), str(tmp_path)],
                           capture_output=True, text=True, timeout=120, check=False,
                           env={"PATH": "/usr/bin:/bin", "VIGIL_VENV": sys.prefix})
        assert r.returncode == 0, r.stderr
        return r.stdout

    out = reset()
    assert f"{DEBIT}: set balance -1.98000 -> 1.02000" in out
    assert balances(db)[DEBIT] == Decimal("1.02") and balances(db)[CREDIT] == 0
    assert "already at its opening balance" in reset()
    assert history(db, DEBIT)[0]["detail"].startswith("make reset-demo")  # type: ignore[index]
    db.dispose()
