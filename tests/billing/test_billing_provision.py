"""Provisioning and rate sheets: idempotent, all-or-nothing, clear errors."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from billing import models as m
from billing.provision import ProvisionError, apply_document, load_document
from billing.rates_import import RateSheetError, import_rates

ROOT = Path(__file__).resolve().parents[2]
DEMO = load_document(ROOT / "etc" / "demo" / "provision.yaml")


def count(db, model) -> int:
    with db.connect() as c:
        return c.execute(select(func.count()).select_from(model)).scalar_one()


def test_demo_applies_and_twice_changes_nothing(db):
    first = apply_document(db, DEMO)
    assert len(first.created) == 20 and not first.updated
    second = apply_document(db, DEMO)
    assert not second.changed and second.unchanged == 20


def test_opening_balance_is_not_reset_by_reapplying(db):
    apply_document(db, DEMO)
    with db.begin() as c:
        c.execute(m.Account.__table__.update().where(
            m.Account.account_id == "193.100.201.1").values(balance=Decimal("0.45")))
    report = apply_document(db, DEMO)
    assert not report.changed
    assert any("opening value" in n for n in report.notes)
    with db.connect() as c:
        assert c.execute(select(m.Account.balance).where(
            m.Account.account_id == "193.100.201.1")).scalar_one() == Decimal("0.45")


def test_changed_field_is_updated_and_reported(db):
    apply_document(db, DEMO)
    doc = copy.deepcopy(DEMO)
    doc["tariffs"][0]["rates"][0]["price_first"] = "0.21"
    report = apply_document(db, doc)
    assert report.updated == ["rate WHOLESALE/593 (price_first)"]


def test_missing_tariff_is_named_and_nothing_is_written(db):
    doc = copy.deepcopy(DEMO)
    doc["products"][0]["accessibility"][1]["tariff"] = "NO SUCH TARIFF"
    with pytest.raises(ProvisionError, match=r"products\[0\]\.accessibility\[1\]\.tariff: "
                                             r"tariff 'NO SUCH TARIFF' does not exist"):
        apply_document(db, doc)
    assert count(db, m.Node) == 0 and count(db, m.Tariff) == 0  # not half-written


@pytest.mark.parametrize("path,value,why", [
    (("accounts", 0, "billing_model"), "prepaid", "must be debit or credit"),
    (("accounts", 0, "balance"), "lots", "is not an amount"),
    (("tariffs", 0, "rates", 0, "prefix"), "59x", "must be digits"),
    (("tariffs", 0, "rates", 0, "interval_first"), 0, "is below 1"),
    (("tariffs", 0, "off_peak_period"), "wd {someday}", "off_peak_period"),
    (("nodes", 0, "translation_rule"), "s/(/", "translation_rule"),
    (("connections", 0, "vendor"), "Nobody", "vendor 'Nobody' does not exist"),
    (("accounts", 0, "colour"), "red", "unknown field"),
])
def test_bad_values_are_refused_with_their_place(db, path, value, why):
    doc = copy.deepcopy(DEMO)
    target = doc
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    with pytest.raises(ProvisionError, match=why):
        apply_document(db, doc)
    assert count(db, m.Account) == 0


def test_dry_run_writes_nothing(db):
    report = apply_document(db, DEMO, dry_run=True)
    assert len(report.created) == 20
    assert count(db, m.Node) == 0


def test_bad_documents(tmp_path):
    bad_yaml = tmp_path / "x.yaml"
    bad_yaml.write_text("nodes: [\n")
    with pytest.raises(ProvisionError, match="not valid YAML"):
        load_document(bad_yaml)
    bad_json = tmp_path / "x.json"
    bad_json.write_text("{")
    with pytest.raises(ProvisionError, match="not valid JSON"):
        load_document(bad_json)
    unknown = tmp_path / "u.yaml"
    unknown.write_text(yaml.safe_dump({"gateways": []}))
    with pytest.raises(ProvisionError, match="unknown section"):
        load_document(unknown)
    with pytest.raises(ProvisionError, match="No such file"):
        load_document(tmp_path / "missing.yaml")


SHEET = """\
Name,Currency,Description
(An) Termination,USD,What we charge our customers for their calls we terminate

Off-peak Period,Free Seconds,Post Call Surcharge,Login Fee,Connect Fee
0,0,0,0,0

Destination,Country,Description,Interval 1,Interval N,Price 1,Price N,\
Off-peak Interval 1,Off-peak Interval N,Off-peak Price 1,Off-peak Price N,\
Forbidden,Hidden,Discontinued,Effective From
420,CZECH REPUBLIC,Proper,1,1,0.05,0.05,1,1,0.05,0.05,,,,12-12-03 03:35
420602,,Mobile,1,1,0.09,0.09,1,1,0.09,0.09,,,,
"""


def test_rate_sheet_in_the_source_layout(db, tmp_path):
    apply_document(db, DEMO)
    f = tmp_path / "rates.csv"
    f.write_text(SHEET)
    result = import_rates(db, "V BTS", f)
    assert (result["created"], result["rejected"]) == (2, 0)
    again = import_rates(db, "V BTS", f)
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)


def test_rate_sheet_with_a_bad_row_imports_nothing_or_rejects_it(db, tmp_path):
    apply_document(db, DEMO)
    before = count(db, m.Rate)
    f = tmp_path / "rates.csv"
    f.write_text(SHEET + "44,UK,,60,60,abc,0.1,,,,,,,,\n4x,,,60,60,0.1,0.1,,,,,,,,\n")
    with pytest.raises(RateSheetError) as err:
        import_rates(db, "V BTS", f)
    assert "line 10: price 1 'abc' is not a price" in str(err.value)
    assert "line 11: destination '4x'" in str(err.value)
    assert count(db, m.Rate) == before
    rejects = tmp_path / "rejects.csv"
    result = import_rates(db, "V BTS", f, rejects=rejects)
    assert (result["created"], result["rejected"]) == (2, 2)
    assert "line 10" in rejects.read_text()
    with pytest.raises(RateSheetError, match="does not exist"):
        import_rates(db, "NOPE", f, rejects=rejects)
    f.write_text("just,some,csv\n")
    with pytest.raises(RateSheetError, match="no rate table"):
        import_rates(db, "V BTS", f)


def test_every_problem_of_a_document_is_reported_at_once(db, tmp_path):
    doc = copy.deepcopy(DEMO)
    doc["accounts"][0]["billing_model"] = "prepaid"          # two bad values, one item
    doc["accounts"][0]["expiration_date"] = "soon"
    doc["accounts"][1]["colour"] = "blue"                    # an unknown field...
    doc["accounts"][1]["credit_limit"] = "lots"              # ...and a bad value, same item
    doc["customers"][0]["balance"] = "x"
    doc["tariffs"][0]["rates"][0]["price_first"] = "-1"
    with pytest.raises(ProvisionError) as err:
        apply_document(db, doc)
    msg = str(err.value)
    # customers[0] failed, so accounts[0].customer is reported too
    assert msg.startswith("7 problem(s), nothing applied")
    for where in ("accounts[0].billing_model", "accounts[0].expiration_date",
                  "accounts[0].customer", "accounts[1]: unknown field(s) colour",
                  "accounts[1].credit_limit", "customers[0].balance",
                  "tariffs[0].rates[0].price_first"):
        assert where in msg, (where, msg)
    assert count(db, m.Account) == 0 and count(db, m.Tariff) == 0   # all or nothing


def test_yaml_error_names_line_and_column(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes:\n  - name: a\n    nas_ip: [1, 2\n  - name: b\n")
    with pytest.raises(ProvisionError) as err:
        load_document(bad)
    assert str(err.value) == (f"{bad}:4:9: not valid YAML: expected ',' or ']', but got ':' "
                              "(while parsing a flow sequence at line 3, column 13)")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"nodes": [\n  {"name": "a",}\n]}\n')
    with pytest.raises(ProvisionError, match=r"bad\.json:2:\d+: not valid JSON"):
        load_document(bad_json)


def test_every_bad_cell_of_a_rate_row_is_reported(db, tmp_path):
    apply_document(db, DEMO)
    sheet = tmp_path / "rates.csv"
    sheet.write_text("Destination,Country,Description,Interval 1,Interval N,Price 1,Price N\n"
                     "44x,UK,,0,60,abc,0.1\n"
                     "45,DK,,60,60,0.1,0.1\n"
                     "46,SE,,60,-5,0.1,zz\n")
    with pytest.raises(RateSheetError) as err:
        import_rates(db, DEMO["tariffs"][0]["name"], sheet)
    msg = str(err.value)
    assert "2 bad row(s)" in msg
    assert ("line 2: destination '44x' is not a digit prefix; interval 1 must be positive; "
            "price 1 'abc' is not a price") in msg
    assert "line 4: interval n must be positive; price n 'zz' is not a price" in msg
