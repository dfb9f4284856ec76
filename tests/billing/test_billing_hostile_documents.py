"""Provisioning documents and rate sheets from a careless admin (or a
hostile file): arbitrary and mutated input fails with ProvisionError or
RateSheetError naming where, never with a traceback."""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from billing import schema
from billing.db import engine_for_url
from billing.provision import ProvisionError, apply_document, load_document
from billing.rates_import import RateSheetError, import_rates, read_sheet

ROOT = Path(__file__).resolve().parents[2]
DEMO_PATH = ROOT / "etc" / "demo" / "provision.yaml"
DEMO = load_document(DEMO_PATH)
SHEET = (
    "Name,Currency\nWHOLESALE,USD\n\n"
    "Destination,Country,Description,Interval 1,Interval N,Price 1,Price N,"
    "Off-peak Interval 1,Off-peak Interval N,Off-peak Price 1,Off-peak Price N,"
    "Forbidden,Hidden,Discontinued,Effective From\n"
    "593,Ecuador,,60,60,0.19,0.19,60,60,0.10,0.10,N,N,N,01-12-2026\n"
    "420602,Czech,mobile,1,1,0.09,0.09,1,1,0.05,0.05,N,N,N,\n")
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def db() -> Iterator[Engine]:
    with tempfile.TemporaryDirectory() as d:
        engine = engine_for_url(f"sqlite:///{d}/billing.db")
        schema.upgrade(engine)
        apply_document(engine, DEMO)
        yield engine
        engine.dispose()


def _write(data: bytes, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(suffix=suffix)
    with open(fd, "wb") as fh:
        fh.write(data)
    return Path(name)


# Values an admin's editor (or a fuzzer) can put where another was expected.
ODD = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=300),
                st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5),
                                                                     st.integers(), max_size=2))


@st.composite
def mutated_document(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(DEMO)
    for _ in range(draw(st.integers(1, 5))):
        section = draw(st.sampled_from(sorted(doc)))
        items = doc[section]
        if not isinstance(items, list) or not items:
            doc[section] = draw(ODD)
            continue
        i = draw(st.integers(0, len(items) - 1))
        item = items[i]
        if not isinstance(item, dict) or draw(st.integers(0, 9)) == 0:
            items[i] = draw(ODD)
            continue
        key = draw(st.sampled_from(sorted(item) + ["extra"]))
        if draw(st.booleans()) and key in item:
            del item[key]
        else:
            item[key] = draw(ODD)
    return doc


@SETTINGS
@given(st.binary(max_size=2000), st.sampled_from([".yaml", ".json"]))
def test_arbitrary_provisioning_files_fail_with_provision_error(data, suffix):
    path = _write(data, suffix)
    try:
        doc = load_document(path)
        assert isinstance(doc, dict)
    except ProvisionError as exc:
        assert str(path) in str(exc)
    finally:
        path.unlink()


# Each example is applied to a database (dry run): fewer of them keep the unit
# tier fast; the mutations are small, so 50 still reach every section.
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(mutated_document())
def test_mutated_provisioning_documents_fail_with_provision_error(db, doc):
    try:
        apply_document(db, doc, dry_run=True)
    except ProvisionError as exc:
        assert str(exc)


@SETTINGS
@given(st.text(max_size=2000))
def test_arbitrary_rate_sheets_are_rows_or_rate_sheet_errors(text):
    try:
        good, bad = read_sheet(text)
    except RateSheetError:
        return
    assert all(isinstance(line, int) for line, _ in good)
    assert all(why for _, _, why in bad)


@st.composite
def mutated_sheet(draw: st.DrawFn) -> bytes:
    data = bytearray(SHEET.encode())
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "insert", "delete"]))
        if kind == "flip":
            data[pos] = draw(st.sampled_from(b',"\n\r\x00\xff-.9eE '))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=12))
        else:
            del data[pos:pos + draw(st.integers(1, 10))]
    return bytes(data)


@SETTINGS
@given(st.one_of(mutated_sheet(), st.binary(max_size=500)))
def test_mutated_rate_sheets_import_or_fail_with_rate_sheet_error(db, data):
    path = _write(data, ".csv")
    try:
        result = import_rates(db, "WHOLESALE", path, dry_run=True)
        assert result["rejected"] == 0
    except RateSheetError as exc:
        assert str(exc)
    finally:
        path.unlink()
