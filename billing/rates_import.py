"""`vigil rates import TARIFF FILE.csv`: the source's rate-sheet layout.

The sheet may start with the tariff header block (``Name,Currency,...`` and
``Off-peak Period,Free Seconds,...``), which is read for reference only, and
then has the rate table, whose header row starts with ``Destination``:

    Destination,Country,Description,Interval 1,Interval N,Price 1,Price N,
    Off-peak Interval 1,Off-peak Interval N,Off-peak Price 1,Off-peak Price N,
    Forbidden,Hidden,Discontinued,Effective From

Country and Description are ignored, as in the source. Every row is checked
first; by default one bad row means nothing is imported and every bad row is
reported with its line number and every problem of the row (docs/billing.md
has the layout). With ``--rejects FILE`` the good rows are
imported and the bad ones written to FILE (as the source mails back the
part that failed), ready to be fixed and imported again.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from billing import models as m
from billing.provision import Report, _Applier

COLUMNS = ["destination", "country", "description", "interval 1", "interval n", "price 1",
           "price n", "off-peak interval 1", "off-peak interval n", "off-peak price 1",
           "off-peak price n", "forbidden", "hidden", "discontinued", "effective from"]
_DATE_FORMATS = ("%d-%m-%y %H:%M", "%d-%m-%Y %H:%M", "%d-%m-%Y", "%d-%m-%y", "%Y-%m-%d",
                 "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")


class RateSheetError(ValueError):
    """The sheet cannot be read, or has bad rows (each named by line)."""


def _date(text: str) -> dt.datetime | None:
    if not text.strip():
        return None
    for f in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text.strip(), f)
        except ValueError:
            continue
    raise ValueError(f"effective date {text!r} is not DD-MM-YYYY [HH:MM]")


def _flag(text: str) -> bool:
    t = text.strip().lower()
    if t in ("", "0", "n", "no"):
        return False
    if t in ("1", "y", "yes", "x", "true"):
        return True
    raise ValueError(f"flag {text!r} is not Y/N")


def parse_row(cells: list[str]) -> dict[str, Any]:
    """One rate row; ValueError naming every bad cell of the row (``; ``-separated)."""
    cells = [c.strip() for c in cells] + [""] * (len(COLUMNS) - len(cells))
    row = dict(zip(COLUMNS, cells, strict=False))
    problems: list[str] = []

    def check(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except ValueError as exc:
            problems.append(str(exc))
            return None

    def interval(k: str) -> int:
        try:
            v = int(row[k])
        except ValueError:
            raise ValueError(f"{k} {row[k]!r} is not a whole number of seconds") from None
        if v <= 0:
            raise ValueError(f"{k} must be positive")
        return v

    def price(k: str) -> Decimal:
        try:
            v = Decimal(row[k])
        except InvalidOperation:
            raise ValueError(f"{k} {row[k]!r} is not a price") from None
        if not v.is_finite() or v < 0:
            raise ValueError(f"{k} {row[k]!r} must be a non-negative price")
        return v

    prefix = row["destination"]
    if not prefix.isdigit():
        problems.append(f"destination {prefix!r} is not a digit prefix")
    out: dict[str, Any] = {
        "prefix": prefix, "interval_first": check(interval, "interval 1"),
        "interval_next": check(interval, "interval n"), "price_first": check(price, "price 1"),
        "price_next": check(price, "price n"), "forbidden": check(_flag, row["forbidden"]),
    }
    if any(row[k] for k in COLUMNS[7:11]):
        out.update(off_interval_first=check(interval, "off-peak interval 1"),
                   off_interval_next=check(interval, "off-peak interval n"),
                   off_price_first=check(price, "off-peak price 1"),
                   off_price_next=check(price, "off-peak price n"))
    eff = check(_date, row["effective from"])
    if eff is not None:
        out["effective_from"] = eff
    if problems:
        raise ValueError("; ".join(problems))
    return out


def read_sheet(text: str) -> tuple[list[tuple[int, dict[str, Any]]],
                                   list[tuple[int, list[str], str]]]:
    """Good rows (line, values) and bad rows (line, cells, why)."""
    # newline="": the csv module then reads CR, LF and CRLF line ends itself
    reader = csv.reader(io.StringIO(text, newline=""))
    in_table = False
    good: list[tuple[int, dict[str, Any]]] = []
    bad: list[tuple[int, list[str], str]] = []
    try:
        for cells in reader:
            line = reader.line_num
            if not in_table:
                if cells and cells[0].strip().lower() == "destination":
                    in_table = True
                continue
            if not any(c.strip() for c in cells):
                continue
            try:
                good.append((line, parse_row(cells)))
            except ValueError as exc:
                bad.append((line, cells, str(exc)))
    except csv.Error as exc:
        raise RateSheetError(f"line {reader.line_num}: not CSV: {exc}") from None
    if not in_table:
        raise RateSheetError("no rate table: expected a header row starting with "
                             "'Destination'")
    return good, bad


def import_rates(engine: Engine, tariff_name: str, path: Path, dry_run: bool = False,
                 rejects: Path | None = None) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RateSheetError(f"{path}: {exc}") from None
    good, bad = read_sheet(text)
    if bad and rejects is None:
        lines = "\n".join(f"  line {ln}: {why}" for ln, _, why in bad)
        raise RateSheetError(f"{path}: {len(bad)} bad row(s), nothing imported "
                             f"(use --rejects FILE to import the good ones):\n{lines}")
    report = Report()
    with Session(engine) as session:
        tariff = session.execute(select(m.Tariff).where(
            m.Tariff.name == tariff_name)).scalar_one_or_none()
        if tariff is None:
            raise RateSheetError(f"tariff {tariff_name!r} does not exist")
        applier = _Applier(session, report)
        for line, values in good:
            applier.rate(f"{path}:{line}", tariff, values)
        if applier.problems:
            session.rollback()
            raise RateSheetError("; ".join(applier.problems))
        if dry_run:
            session.rollback()
        else:
            session.commit()
    if bad and rejects is not None and not dry_run:
        with open(rejects, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow([c.title() for c in COLUMNS] + ["Error"])
            for ln, cells, why in bad:
                w.writerow(cells + [f"line {ln}: {why}"])
    return {"created": len(report.created), "updated": len(report.updated),
            "unchanged": report.unchanged, "rejected": len(bad),
            "rejects": [{"line": ln, "error": why} for ln, _, why in bad]}
