"""Declarative provisioning: `vigil provision FILE` (JSON or YAML).

The document lists ``nodes``, ``tariffs`` (with ``rates``), ``products``
(with ``accessibility``), ``customers``, ``accounts``, ``vendors`` and
``connections``, each found by its natural key (name, account id, rate
prefix + effective date). Applying the same document twice changes nothing.
Balances in the document are *opening* balances: set when the account,
customer or vendor is created and never reset afterwards (re-applying a
document must not give back money already spent).

The whole document is checked, then applied in one transaction: an error
anywhere (a product naming a tariff that does not exist) changes nothing.
Every item is checked even after one failed, and every problem is reported
at once (unknown fields, every bad value, a reference to a missing item), each named
by where it is (``accounts[2].product``); a YAML or JSON syntax error names
its line and column.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from billing import models as m
from billing import offpeak
from billing.translation import TranslationError, compile_rules

log = logging.getLogger(__name__)

SECTIONS = ("nodes", "tariffs", "products", "customers", "accounts", "vendors", "connections")


class ProvisionError(ValueError):
    """The document is wrong; the message names where (``accounts[2].product``)."""


@dataclass
class Report:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "notes": self.notes}


def load_document(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProvisionError(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ProvisionError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ProvisionError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}"
                             ) from None
    except yaml.YAMLError as exc:
        raise ProvisionError(_yaml_error(path, exc)) from None
    except (ValueError, RecursionError) as exc:
        raise ProvisionError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}:"
                             f" {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                             ) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ProvisionError(f"{path}: the document must be a mapping of sections")
    unknown = set(doc) - set(SECTIONS)
    if unknown:
        raise ProvisionError(f"{path}: unknown section(s) {', '.join(sorted(map(str, unknown)))}; "
                             f"allowed: {', '.join(SECTIONS)}")
    return doc


def _yaml_error(path: Path, exc: yaml.YAMLError) -> str:
    """``FILE:LINE:COLUMN: not valid YAML: <problem> (<context> at L:C)``, 1-based."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    cmark = getattr(exc, "context_mark", None)
    if context and cmark is not None:
        problem += f" ({context} at line {cmark.line + 1}, column {cmark.column + 1})"
    return f"{where}: not valid YAML: {problem}"


# ----------------------------------------------------------- value readers


def _dec(where: str, value: Any, allow_negative: bool = False) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ProvisionError(f"{where}: {value!r} is not an amount")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ProvisionError(f"{where}: {value!r} is not an amount") from None
    if not d.is_finite() or (d < 0 and not allow_negative):
        raise ProvisionError(f"{where}: {value!r} must be a non-negative amount")
    return d


def _port(where: str, value: Any) -> int:
    """A node's RFC 5176 port: where `vigil calls disconnect` sends."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ProvisionError(f"{where}: a UDP port (1-65535) is required, not {value!r}")
    return value


def _max_calls(where: str, value: Any) -> int | None:
    """Concurrent calls allowed; absent or null: no limit."""
    return None if value is None else _int(where, value, 0)


def _int(where: str, value: Any, lo: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ProvisionError(f"{where}: {value!r} is not a whole number")
    try:
        i = int(value)
    except ValueError:
        raise ProvisionError(f"{where}: {value!r} is not a whole number") from None
    if i < lo:
        raise ProvisionError(f"{where}: {i} is below {lo}")
    return i


def _date(where: str, value: Any) -> dt.datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise ProvisionError(f"{where}: {value!r} is not a date (YYYY-MM-DD[ HH:MM])") from None


def _str(where: str, value: Any, required: bool = True, max_len: int = 255) -> str:
    if value is None:
        if required:
            raise ProvisionError(f"{where}: is required")
        return ""
    if isinstance(value, dict | list):
        raise ProvisionError(f"{where}: must be text")
    s = str(value)
    if required and not s:
        raise ProvisionError(f"{where}: must not be empty")
    if len(s) > max_len:
        raise ProvisionError(f"{where}: longer than {max_len} characters")
    return s


def _items(doc: dict[str, Any], section: str) -> list[dict[str, Any]]:
    items = doc.get(section) or []
    if not isinstance(items, list):
        raise ProvisionError(f"{section}: must be a list")
    for i, it in enumerate(items):
        if not isinstance(it, dict):
            raise ProvisionError(f"{section}[{i}]: must be a mapping")
    return items


def _sublist(where: str, value: Any) -> list[Any]:
    """A nested list (rates, accessibility): absent is empty, anything else
    but a list is the admin's mistake, named."""
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        raise ProvisionError(f"{where}: must be a list")
    return value


def _check_keys(where: str, item: dict[str, Any], allowed: set[str]) -> None:
    extra = set(item) - allowed
    if extra:
        raise ProvisionError(f"{where}: unknown field(s) {', '.join(sorted(map(str, extra)))}; "
                             f"allowed: {', '.join(sorted(allowed))}")


class _Applier:
    def __init__(self, session: Session, report: Report) -> None:
        self.s = session
        self.report = report
        self.problems: list[str] = []

    def _each(self, fn: Any, *args: Any) -> Any:
        """Run one item's check-and-apply; a problem is kept, and the next item checked."""
        try:
            return fn(*args)
        except _Problems as many:
            self.problems.extend(many.problems)
            return None
        except ProvisionError as exc:
            self.problems.append(str(exc))
            return None

    def _keys(self, where: str, item: dict[str, Any], allowed: set[str]) -> None:
        """Unknown fields are reported, and the item's values still checked."""
        try:
            _check_keys(where, item, allowed)
        except ProvisionError as exc:
            self.problems.append(str(exc))

    def _section(self, doc: dict[str, Any], section: str) -> list[dict[str, Any]]:
        try:
            return _items(doc, section)
        except ProvisionError as exc:
            self.problems.append(str(exc))
            return []

    def _by(self, model: type, **key: Any) -> Any:
        return self.s.execute(select(model).filter_by(**key)).scalar_one_or_none()

    def _upsert(self, label: str, model: type, key: dict[str, Any], values: dict[str, Any],
                create_only: dict[str, Any] | None = None) -> Any:
        obj = self._by(model, **key)
        if obj is None:
            obj = model(**key, **values, **(create_only or {}))
            self.s.add(obj)
            self.s.flush()
            self.report.created.append(label)
            return obj
        changed = [k for k, v in values.items() if getattr(obj, k) != v]
        for k in changed:
            setattr(obj, k, values[k])
        if changed:
            self.report.updated.append(f"{label} ({', '.join(changed)})")
        else:
            self.report.unchanged += 1
        for k, v in (create_only or {}).items():
            if getattr(obj, k) != v:
                self.report.notes.append(f"{label}: {k} is {getattr(obj, k)} in the database; "
                                         f"the document's opening value {v} is not re-applied")
        return obj

    def _ref(self, where: str, model: type, name: Any, what: str) -> Any:
        obj = self._by(model, name=_str(where, name))
        if obj is None:
            raise ProvisionError(f"{where}: {what} {name!r} does not exist")
        return obj

    # ---------------------------------------------------------------- apply
    def apply(self, doc: dict[str, Any]) -> None:
        """Check and apply every item; raise one ProvisionError naming every problem."""
        for i, n in enumerate(self._section(doc, "nodes")):
            self._each(self._node, f"nodes[{i}]", n)
        for i, t in enumerate(self._section(doc, "tariffs")):
            self._each(self._tariff, f"tariffs[{i}]", t)
        for i, p in enumerate(self._section(doc, "products")):
            self._each(self._product, f"products[{i}]", p)
        for i, c in enumerate(self._section(doc, "customers")):
            self._each(self._customer, f"customers[{i}]", c)
        for i, a in enumerate(self._section(doc, "accounts")):
            self._each(self._account, f"accounts[{i}]", a)
        for i, v in enumerate(self._section(doc, "vendors")):
            self._each(self._vendor, f"vendors[{i}]", v)
        for i, c in enumerate(self._section(doc, "connections")):
            self._each(self._connection, f"connections[{i}]", c)
        if self.problems:
            raise ProvisionError(f"{len(self.problems)} problem(s), nothing applied:\n  "
                                 + "\n  ".join(self.problems))

    def _node(self, w: str, n: dict[str, Any]) -> None:
        self._keys(w, n, {"name", "nas_ip", "radius_source_ip", "radius_secret",
                          "translation_rule", "require_message_authenticator",
                          "disconnect_port"})
        f = _Fields()
        rule = f(_rule, f"{w}.translation_rule", n.get("translation_rule"))
        key = {"name": f(_str, f"{w}.name", n.get("name"))}
        values = {"nas_ip": f(_str, f"{w}.nas_ip", n.get("nas_ip")),
                  "radius_source_ip": f(_str, f"{w}.radius_source_ip",
                                        n.get("radius_source_ip"), False),
                  "radius_secret": f(_str, f"{w}.radius_secret", n.get("radius_secret")),
                  "translation_rule": rule,
                  "require_message_authenticator":
                      bool(n.get("require_message_authenticator", False)),
                  "disconnect_port": f(_port, f"{w}.disconnect_port",
                                       n.get("disconnect_port", 3799))}
        f.check()
        self._upsert(f"node {n.get('name')}", m.Node, key, values)

    def _product(self, w: str, p: dict[str, Any]) -> None:
        self._keys(w, p, {"name", "currency", "breakage", "accessibility"})
        f = _Fields()
        key = {"name": f(_str, f"{w}.name", p.get("name"))}
        values = {"currency": f(_str, f"{w}.currency", p.get("currency", "USD")),
                  "breakage": f(_dec, f"{w}.breakage", p.get("breakage", 0))}
        f.check()
        prod = self._upsert(f"product {p.get('name')}", m.Product, key, values)
        for j, a in enumerate(_sublist(f"{w}.accessibility", p.get("accessibility"))):
            self._each(self._access, f"{w}.accessibility[{j}]", prod, a)

    def _access(self, wa: str, prod: m.Product, a: Any) -> None:
        if not isinstance(a, dict):
            raise ProvisionError(f"{wa}: must be a mapping")
        self._keys(wa, a, {"node", "tariff", "cld"})
        f = _Fields()
        cld = f(_str, f"{wa}.cld", a.get("cld"), False)
        node = f(self._ref, f"{wa}.node", m.Node, a.get("node"), "node")
        tariff = f(self._ref, f"{wa}.tariff", m.Tariff, a.get("tariff"), "tariff")
        if tariff is not None and tariff.currency != prod.currency:
            f.problems.append(f"{wa}.tariff: tariff {tariff.name!r} is in "
                              f"{tariff.currency}, the product in {prod.currency}")
        f.check()
        self._upsert(f"accessibility {prod.name}/{node.name}/{cld or '*'}",
                     m.Accessibility,
                     {"product_id": prod.id, "node_id": node.id, "cld": cld},
                     {"tariff_id": tariff.id})

    def _customer(self, w: str, c: dict[str, Any]) -> None:
        self._keys(w, c, {"name", "currency", "balance", "credit_limit", "blocked",
                          "max_calls"})
        f = _Fields()
        limit = c.get("credit_limit")
        key = {"name": f(_str, f"{w}.name", c.get("name"))}
        values = {"currency": f(_str, f"{w}.currency", c.get("currency", "USD")),
                  "credit_limit": None if limit is None else f(_dec, f"{w}.credit_limit",
                                                               limit),
                  "blocked": bool(c.get("blocked", False)),
                  "max_calls": f(_max_calls, f"{w}.max_calls", c.get("max_calls"))}
        opening = {"balance": f(_dec, f"{w}.balance", c.get("balance", 0), True)}
        f.check()
        self._upsert(f"customer {c.get('name')}", m.Customer, key, values, opening)

    def _vendor(self, w: str, v: dict[str, Any]) -> None:
        self._keys(w, v, {"name", "currency", "balance"})
        f = _Fields()
        key = {"name": f(_str, f"{w}.name", v.get("name"))}
        values = {"currency": f(_str, f"{w}.currency", v.get("currency", "USD"))}
        opening = {"balance": f(_dec, f"{w}.balance", v.get("balance", 0), True)}
        f.check()
        self._upsert(f"vendor {v.get('name')}", m.Vendor, key, values, opening)

    def _connection(self, w: str, c: dict[str, Any]) -> None:
        self._keys(w, c, {"name", "vendor", "remote_ip", "tariff", "translation_rule",
                          "direction"})
        f = _Fields()
        direction = c.get("direction", "to_vendor")
        if direction not in ("to_vendor", "from_vendor"):
            f.problems.append(f"{w}.direction: must be to_vendor or from_vendor")
        rule = f(_rule, f"{w}.translation_rule", c.get("translation_rule"))
        key = {"name": f(_str, f"{w}.name", c.get("name"))}
        remote_ip = f(_str, f"{w}.remote_ip", c.get("remote_ip"))
        vendor = f(self._ref, f"{w}.vendor", m.Vendor, c.get("vendor"), "vendor")
        tariff = f(self._ref, f"{w}.tariff", m.Tariff, c.get("tariff"), "tariff")
        f.check()
        self._upsert(f"connection {c.get('name')}", m.Connection, key,
                     {"vendor_id": vendor.id, "remote_ip": remote_ip,
                      "tariff_id": tariff.id, "translation_rule": rule,
                      "direction": direction})

    def _tariff(self, w: str, t: dict[str, Any]) -> None:
        self._keys(w, t, {"name", "currency", "free_seconds", "connect_fee",
                          "post_call_surcharge", "login_fee", "off_peak_period",
                          "round_charged_amount", "rates"})
        f = _Fields()
        period = f(_period, f"{w}.off_peak_period", t.get("off_peak_period"))
        rnd = f(_str, f"{w}.round_charged_amount", t.get("round_charged_amount"), False)
        if rnd:
            f(_dec, f"{w}.round_charged_amount", rnd)
        key = {"name": f(_str, f"{w}.name", t.get("name"))}
        values = {"currency": f(_str, f"{w}.currency", t.get("currency", "USD")),
                  "free_seconds": f(_int, f"{w}.free_seconds", t.get("free_seconds", 0)),
                  "connect_fee": f(_dec, f"{w}.connect_fee", t.get("connect_fee", 0)),
                  "post_call_surcharge": f(_dec, f"{w}.post_call_surcharge",
                                           t.get("post_call_surcharge", 0), True),
                  "login_fee": f(_dec, f"{w}.login_fee", t.get("login_fee", 0)),
                  "off_peak_period": period, "round_charged_amount": rnd}
        f.check()
        tariff = self._upsert(f"tariff {t.get('name')}", m.Tariff, key, values)
        for j, r in enumerate(_sublist(f"{w}.rates", t.get("rates"))):
            wr = f"{w}.rates[{j}]"
            if not isinstance(r, dict):
                self.problems.append(f"{wr}: must be a mapping")
                continue
            self._each(self.rate, wr, tariff, r)

    def rate(self, wr: str, tariff: m.Tariff, r: dict[str, Any]) -> None:
        self._keys(wr, r, {"prefix", "interval_first", "interval_next", "price_first",
                           "price_next", "off_interval_first", "off_interval_next",
                           "off_price_first", "off_price_next", "forbidden",
                           "effective_from"})
        f = _Fields()
        prefix = f(_str, f"{wr}.prefix", r.get("prefix"), True, 32)
        if prefix is not None and not prefix.isdigit():
            f.problems.append(f"{wr}.prefix: {prefix!r} must be digits")
        eff = f(_date, f"{wr}.effective_from", r.get("effective_from")) or \
            dt.datetime(2000, 1, 1)

        def opt_int(k: str) -> int | None:
            return None if r.get(k) in (None, "") else f(_int, f"{wr}.{k}", r[k], 1)

        def opt_dec(k: str) -> Decimal | None:
            return None if r.get(k) in (None, "") else f(_dec, f"{wr}.{k}", r[k])

        first = f(_int, f"{wr}.interval_first", r.get("interval_first", 60), 1)
        price_first = f(_dec, f"{wr}.price_first", r.get("price_first"))
        values = {"interval_first": first,
                  "interval_next": f(_int, f"{wr}.interval_next",
                                     r.get("interval_next", first), 1),
                  "price_first": price_first,
                  "price_next": f(_dec, f"{wr}.price_next", r.get("price_next", price_first)),
                  "off_interval_first": opt_int("off_interval_first"),
                  "off_interval_next": opt_int("off_interval_next"),
                  "off_price_first": opt_dec("off_price_first"),
                  "off_price_next": opt_dec("off_price_next"),
                  "forbidden": bool(r.get("forbidden", False))}
        f.check()
        self._upsert(f"rate {tariff.name}/{prefix}", m.Rate,
                     {"tariff_id": tariff.id, "prefix": prefix, "effective_from": eff},
                     values)

    def _account(self, w: str, a: dict[str, Any]) -> None:
        self._keys(w, a, {"account_id", "customer", "product", "billing_model", "balance",
                          "credit_limit", "voip_password", "blocked", "activation_date",
                          "expiration_date", "preferred_lang", "redirect_number",
                          "max_calls"})
        f = _Fields()
        model = a.get("billing_model", "debit")
        if model not in ("debit", "credit"):
            f.problems.append(f"{w}.billing_model: must be debit or credit, not {model!r}")
        key = {"account_id": f(_str, f"{w}.account_id", a.get("account_id"), True, 64)}
        values = {"billing_model": model,
                  "credit_limit": f(_dec, f"{w}.credit_limit", a.get("credit_limit", 0)),
                  "voip_password": f(_str, f"{w}.voip_password", a.get("voip_password"),
                                     False, 64),
                  "blocked": bool(a.get("blocked", False)),
                  "activation_date": f(_date, f"{w}.activation_date",
                                       a.get("activation_date")),
                  "expiration_date": f(_date, f"{w}.expiration_date",
                                       a.get("expiration_date")),
                  "preferred_lang": f(_str, f"{w}.preferred_lang",
                                      a.get("preferred_lang", "en"), True, 2),
                  "redirect_number": f(_str, f"{w}.redirect_number", a.get("redirect_number"),
                                       False, 32),
                  "max_calls": f(_max_calls, f"{w}.max_calls", a.get("max_calls"))}
        opening = {"balance": f(_dec, f"{w}.balance", a.get("balance", 0), True)}
        customer = f(self._ref, f"{w}.customer", m.Customer, a.get("customer"), "customer")
        product = f(self._ref, f"{w}.product", m.Product, a.get("product"), "product")
        f.check()
        self._upsert(f"account {a.get('account_id')}", m.Account, key,
                     {"customer_id": customer.id, "product_id": product.id, **values}, opening)


class _Problems(ProvisionError):
    """Every problem of one item."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class _Fields:
    """Reads an item's values, keeping every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def __call__(self, read: Any, *args: Any) -> Any:
        try:
            return read(*args)
        except ProvisionError as exc:
            self.problems.append(str(exc))
            return None

    def check(self) -> None:
        if self.problems:
            raise _Problems(self.problems)


def _rule(where: str, value: Any) -> str:
    rule = _str(where, value, False)
    try:
        compile_rules(rule)
    except TranslationError as exc:
        raise ProvisionError(f"{where}: {exc}") from None
    return rule


def _period(where: str, value: Any) -> str:
    period = _str(where, value, False)
    try:
        offpeak.parse(period)
    except offpeak.PeriodError as exc:
        raise ProvisionError(f"{where}: {exc}") from None
    return period


def apply_document(engine: Engine, doc: dict[str, Any], dry_run: bool = False) -> Report:
    report = Report()
    with Session(engine) as session:
        try:
            _Applier(session, report).apply(doc)
        except ProvisionError:
            session.rollback()
            raise
        if dry_run:
            session.rollback()
        else:
            session.commit()
    log.info("provisioning %s: %d created, %d updated, %d unchanged",
             "checked (dry run)" if dry_run else "applied", len(report.created),
             len(report.updated), report.unchanged)
    return report
