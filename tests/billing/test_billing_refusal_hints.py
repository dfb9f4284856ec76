"""`vigil call` explains every refusal; an emptied demo account is refilled with
`vigil account adjust` (real engine process, real RADIUS)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from billing.engine import ReturnCode
from billing.refusal_hints import HINTS, hint, return_code
from billing.testing import BillingSandbox

DEBIT = "193.100.201.1"


def test_every_refusal_code_has_a_hint() -> None:
    codes = {int(v) for k, v in vars(ReturnCode).items() if k.isupper()}
    refusals = codes - {ReturnCode.SUCCESS, ReturnCode.REDIRECT_TO_CUSTOMER_SERVICE}
    assert refusals <= set(HINTS), sorted(refusals - set(HINTS))
    assert "vigil account adjust 42 " in hint(ReturnCode.ZERO_BALANCE, "42")
    assert "engine log" in hint(99, "42") and "engine log" in hint(None, "42")
    assert return_code("h323-return-code=4") == 4 and return_code("") is None


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BillingSandbox]:
    # the engine re-reads funds at once, so the top-up shows in the next call
    monkeypatch.setenv("VIGIL__RADIUS__ACCOUNT_CACHE_SEC", "0")
    with BillingSandbox(base=tmp_path / "engine") as box:
        yield box


@pytest.mark.integration
def test_zero_balance_refusal_says_how_to_top_up(engine: BillingSandbox) -> None:
    drained = engine.vigil("account", "adjust", DEBIT, "-1.02", "--reason", "drain for test")
    assert "-> 0.00000" in drained.stdout
    refused = engine.vigil("call", check=False)
    assert refused.returncode == 1
    assert "Access-Reject" in refused.stdout
    assert f"hint: the debit account has no money left (`vigil account show {DEBIT}`" in \
        refused.stdout
    engine.vigil("account", "adjust", DEBIT, "5", "--reason", "top-up for test")
    deadline = time.monotonic() + 30
    while True:
        again = engine.vigil("call", check=False)
        if again.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "hint:" not in again.stdout
