"""The AAA engine: authentication, authorization and accounting decisions.

No wire format here: the RADIUS server turns packets into
:class:`~billing.request.CallRequest` and :class:`Decision` back into
packets. Money is reached only through the store interface.

Log lines follow the source's billing log so that an admin who knows it can
read a call's story (``Found Account``, ``Translation ... applied``,
``Maximum call duration``, ``Call to ... will be charged``).
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from billing import h323time, rating, record_key
from billing.calls import Lifetimes
from billing.catalog import Catalog, ConnectionInfo, NodeInfo, TariffInfo
from billing.db import DatabaseError
from billing.request import CallRequest
from billing.store import (
    XDR,
    AccountingOp,
    AccountView,
    BillingModel,
    BillingStore,
    OpKind,
    Refusal,
    Reservation,
    ReserveRequest,
)
from billing.translation import TranslationError, translate
from vigil.clock import utcnow

log = logging.getLogger("billing.engine")


class ReturnCode:
    """Cisco's h323-return-code values used in replies."""

    SUCCESS = 0
    INVALID_ACCOUNT = 1
    INVALID_PASSWORD = 2
    ACCOUNT_IN_USE = 3
    ZERO_BALANCE = 4
    CARD_EXPIRED = 5
    CREDIT_LIMIT = 6
    USER_DENIED = 7
    SERVICE_NOT_AVAILABLE = 8
    CALLED_NUMBER_BLOCKED = 9
    INVALID_ARGUMENT = 11
    INSUFFICIENT_FUNDS = 12
    REDIRECT_TO_CUSTOMER_SERVICE = 52


class StaleView(Exception):
    """The cached account says no money, but calls hold some of it: they may
    have ended on another engine or process a moment ago. The caller reads
    the account from the database (off the packet loop) and asks again."""

    def __init__(self, account_id: str) -> None:
        super().__init__(account_id)
        self.account_id = account_id


@dataclass
class Decision:
    accept: bool
    code: int
    reason: str = ""
    attributes: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class EngineSettings:
    selftest_nas: str = "127.0.0.1"
    selftest_user: str = "127.0.0.1"
    selftest_password: str = "cisco"
    fraud_active: bool = True
    fraud_test_mode: bool = False
    fraud_recovery_sec: int = 1800
    default_lifetime: int = 120
    incoming_session_lifetime: int = 10
    alive_interval: int = 60
    radius_retransmits: int = 5
    radius_timeout: int = 3
    suspicious_time_sec: int = 86400
    max_credit_time: int = 14400
    max_duration_sec: int = 172800
    cisco_vsa_prefix: bool = False


@dataclass
class AuthorizationPlan:
    """An authorization that needs the database's word: the reservation to
    commit, then ``finish`` turns its outcome into the reply."""

    op: AccountingOp
    accept: Callable[[Reservation], Decision]
    refuse: Callable[[Refusal], Decision]

    def finish(self) -> Decision:
        req = self.op.reserve
        assert req is not None
        if req.granted is not None:
            return self.accept(req.granted)
        return self.refuse(req.refused or Refusal.FUNDS)


def _money(d: Decimal, places: str = "0.01") -> str:
    return str(d.quantize(Decimal(places)))




class Engine:
    def __init__(self, store: BillingStore, catalog: Catalog, settings: EngineSettings,
                 clock: Callable[[], dt.datetime] = utcnow,
                 on_fraud: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.catalog = catalog
        self.settings = settings
        self.clock = clock
        self.on_fraud = on_fraud
        s = settings
        self.lifetimes = Lifetimes(s.radius_retransmits, s.radius_timeout, s.alive_interval,
                                   s.incoming_session_lifetime, s.default_lifetime)

    # ------------------------------------------------------------ helpers
    def _reply(self, accept: bool, code: int, reason: str,
               attrs: list[tuple[str, str]] | None = None) -> Decision:
        attrs = list(attrs or [])
        attrs.append(("h323-return-code", str(code)))
        if self.settings.cisco_vsa_prefix:
            attrs = [(n, f"{n}={v}") if n.startswith("h323-") else (n, v) for n, v in attrs]
        if accept:
            log.info("Authentication acknowledge response (h323-return-code %d)", code)
        else:
            log.info("Authentication reject: %s (h323-return-code %d)", reason, code)
        return Decision(accept, code, reason, attrs)

    def is_selftest(self, req: CallRequest) -> bool:
        s = self.settings
        return req.nas_ip == s.selftest_nas and req.account_id == s.selftest_user

    def _selftest(self, req: CallRequest) -> Decision:
        # The radcheck account: answered from configuration alone so that a
        # self-test never touches balances or writes xDRs, and still proves
        # the RADIUS path is alive.
        password = req.clear_password()
        ok = password is not None and hmac.compare_digest(
            password.encode(), self.settings.selftest_password.encode())
        if not ok:
            return self._reply(False, ReturnCode.INVALID_PASSWORD, "self-test password mismatch")
        return self._reply(True, ReturnCode.SUCCESS, "self-test", [("h323-credit-time", "3600")])

    def _check_account(self, req: CallRequest, now: dt.datetime
                       ) -> tuple[AccountView | None, Decision | None]:
        account_id = req.account_id
        if account_id != req.user_name:
            log.info("fixup: 'PortaBilling_UserName' attribute present. Replace User-Name "
                     "'%s' with '%s'", req.user_name, account_id)
        if not account_id:
            return None, self._reply(False, ReturnCode.INVALID_ACCOUNT, "no account id")
        acct = self.store.find_account(account_id)
        if acct is None:
            return None, self._reply(False, ReturnCode.INVALID_ACCOUNT,
                                     f"account {account_id!r} not found")
        log.info("Found Account: %s[%d,%s,balance=%s] of customer %s[%d,balance=%s,limit=%s]",
                 acct.account_id, acct.pk, acct.billing_model, acct.balance, acct.customer_name,
                 acct.customer_id, acct.customer_balance, acct.customer_credit_limit)
        if req.ignore_password:
            log.info("PortaBilling_Ignore_Password present, skip the password check")
        elif not acct.voip_password:
            log.info("Account has an empty password, skip the password check")
        elif (password := req.clear_password()) is None or not hmac.compare_digest(
                password.encode(), acct.voip_password.encode()):
            return None, self._reply(False, ReturnCode.INVALID_PASSWORD, "password mismatch")
        if acct.blocked or acct.customer_blocked:
            return None, self._reply(False, ReturnCode.USER_DENIED, "account or customer blocked")
        if acct.expiration_date is not None and acct.expiration_date <= now:
            return None, self._reply(False, ReturnCode.CARD_EXPIRED, "account expired")
        if acct.activation_date is not None and acct.activation_date > now:
            return None, self._reply(False, ReturnCode.USER_DENIED, "account not active yet")
        return acct, None

    def _login(self, acct: AccountView, call_key: str) -> None:
        """Simultaneous-login prevention for debit accounts ([Fraud_Detection])
        at authentication: what this engine last read of the hold, for the
        log. The hold itself is the database's (``login_call``, taken by the
        authentication's and authorization's conditional UPDATEs, given
        back by the Stop, whichever engine or process sees it): a refusal
        from this copy could be stale (the Stop went to another process a
        moment ago), so it never refuses on its own."""
        s = self.settings
        if not s.fraud_active or acct.billing_model != BillingModel.DEBIT or not call_key:
            return
        held = acct.login_call
        if held and held == call_key[:128]:
            log.info("Account %s is already logged in, same session", acct.account_id)
        elif held and acct.login_until is not None and acct.login_until > self.clock():
            log.info("Account %s was last seen logged in to '%s': the database decides",
                     acct.account_id, held)
        else:
            log.info("Logging in account '%s'(%d) to '%s'", acct.account_id, acct.pk, call_key)

    def _node(self, req: CallRequest) -> NodeInfo | None:
        return self.catalog.node_for(req.source_ip, req.nas_ip)

    def _common_attrs(self, acct: AccountView) -> list[tuple[str, str]]:
        return [("h323-billing-model", "1" if acct.billing_model == BillingModel.DEBIT else "0"),
                ("h323-currency", acct.currency),
                ("h323-preferred-lang", acct.preferred_lang or "en")]

    # ------------------------------------------------------ authentication
    def authenticate(self, req: CallRequest) -> Decision:
        """Plan, take the login hold in the database, reply (one request at a
        time; the server group-commits many plans instead)."""
        try:
            return self._now(self.plan_authentication(req))
        except StaleView as stale:
            self.store.forget(stale.account_id)
            return self._now(self.plan_authentication(req, fresh=True))

    def plan_authentication(self, req: CallRequest, fresh: bool = False
                            ) -> Decision | AuthorizationPlan:
        """Stage one (no called number). A debit account under
        [Fraud_Detection] is logged in here, as the source does: the hold
        (``accounts.login_call``) is taken by one conditional UPDATE,
        committed before the Access-Accept, so every engine and process
        sees it."""
        if self.is_selftest(req):
            return self._selftest(req)
        now = self.clock()
        acct, refusal = self._check_account(req, now)
        if refusal is not None or acct is None:
            return refusal or self._reply(False, ReturnCode.INVALID_ACCOUNT, "unknown")
        funds = self.store.available(acct, now, exclude_call=req.call_key)
        if funds <= 0:
            if not fresh and (acct.reserved > 0 or acct.customer_reserved > 0) and \
                    self.store.in_memory(acct.account_id):
                raise StaleView(acct.account_id)
            code = (ReturnCode.ZERO_BALANCE if acct.billing_model == BillingModel.DEBIT
                    else ReturnCode.CREDIT_LIMIT)
            return self._reply(False, code, f"no funds ({funds})")
        self._login(acct, req.call_key)
        attrs = [("h323-credit-amount", _money(funds))]
        attrs += self._common_attrs(acct)
        attrs += [("h323-ivr-in", f"PortaBilling_AccountBalance:{acct.balance:.5f}"),
                  ("h323-ivr-in", f"available-funds:{_money(funds)}")]
        if acct.redirect_number:
            attrs.append(("h323-redirect-number", acct.redirect_number))

        def accept(_: Reservation) -> Decision:
            if acct.redirect_number:
                return self._reply(True, ReturnCode.REDIRECT_TO_CUSTOMER_SERVICE, "redirect",
                                   attrs)
            return self._reply(True, ReturnCode.SUCCESS, "ok", attrs)

        s = self.settings
        if not (s.fraud_active and req.call_key and acct.billing_model == BillingModel.DEBIT):
            return accept(Reservation(0, Decimal(0)))
        hold = ReserveRequest(
            account_pk=acct.pk, customer_pk=None, exclusive_login=True,
            login_until=now + dt.timedelta(seconds=s.fraud_recovery_sec),
            proposal=Reservation(0, Decimal(0)), decide=lambda _funds: None, lifetime=0)
        op = AccountingOp(session_key="", kind=OpKind.LOGIN, call_key=req.call_key,
                          account_pk=acct.pk, reserve=hold)

        def refuse(_: Refusal) -> Decision:
            msg = f"debit account {acct.account_id} already logged in to another session"
            if not s.fraud_test_mode:
                return self._reply(False, ReturnCode.ACCOUNT_IN_USE, msg)
            log.warning("fraud detection (test mode): %s; allowed", msg)
            if self.on_fraud:
                self.on_fraud(msg)
            return accept(Reservation(0, Decimal(0)))

        return AuthorizationPlan(op, accept, refuse)

    def _now(self, plan: Decision | AuthorizationPlan) -> Decision:
        if isinstance(plan, Decision):
            return plan
        if self.store.apply([plan.op], self.clock()) == [None]:
            raise DatabaseError("the reservation could not be stored")
        return plan.finish()

    # ------------------------------------------------------- authorization
    def authorize(self, req: CallRequest) -> Decision:
        """Plan, reserve in the database, reply (one request at a time; the
        server group-commits many plans instead)."""
        return self._now(self.plan_authorization(req))

    def plan_authorization(self, req: CallRequest) -> Decision | AuthorizationPlan:
        """Every check that needs no database write; a Decision when that
        settles it, else the reservation the database must grant."""
        if self.is_selftest(req):
            return self._selftest(req)
        now = self.clock()  # the request's one reading of billing time
        acct, refusal = self._check_account(req, now)
        if refusal is not None or acct is None:
            return refusal or self._reply(False, ReturnCode.INVALID_ACCOUNT, "unknown")
        node = self._node(req)
        if node is None:
            return self._reply(False, ReturnCode.SERVICE_NOT_AVAILABLE, "unknown node")
        if not req.called:
            return self._reply(False, ReturnCode.INVALID_ARGUMENT, "no Called-Station-Id")
        tariff = self.catalog.tariff_for(acct.product_id, node.pk, req.called)
        if tariff is None:
            return self._reply(False, ReturnCode.SERVICE_NOT_AVAILABLE,
                               f"product has no accessibility on node {node.name}")
        try:
            cld = self._translate(node.translation_rule, req.called, "node")
        except TranslationError as exc:
            return self._reply(False, ReturnCode.SERVICE_NOT_AVAILABLE, str(exc))
        log.info("Setting up a new charge with tariff '%s'", tariff.name)
        try:
            row = rating.select_rate(tariff.rates, cld, now)
        except rating.RatingError as exc:
            return self._reply(False, ReturnCode.CALLED_NUMBER_BLOCKED, str(exc))
        price, terms = self._price(tariff, row, now), tariff.terms
        s = self.settings
        exclusive = s.fraud_active and acct.billing_model == BillingModel.DEBIT and \
            bool(req.call_key)
        if exclusive and s.fraud_test_mode:
            exclusive = False
            held = acct.login_call
            if held and held != req.call_key[:128] and acct.login_until is not None and \
                    acct.login_until > now:
                msg = f"debit account {acct.account_id} already logged in to session {held}"
                log.warning("fraud detection (test mode): %s; allowed", msg)
                if self.on_fraud:
                    self.on_fraud(msg)

        def decide(funds: Decimal) -> Reservation | None:
            log.info("Compute maximum call duration for leg Account %s to destination with "
                     "funds %s", acct.account_id, funds)
            longest = rating.longest_call(funds, price, terms, cap=s.max_credit_time)
            if longest is None:
                return None
            seconds, c = longest
            if log.isEnabledFor(logging.INFO):  # the explanation is built for the log only
                log.info("Maximum call duration: %d announced as %d %s by rate %d", seconds,
                         seconds, c.explain(price), row.rate_id)
            return Reservation(seconds, c.amount)

        funds = acct.funds_left
        reserve = ReserveRequest(
            account_pk=acct.pk, customer_pk=acct.customer_id if acct.customer_limited else None,
            exclusive_login=exclusive,
            login_until=now + dt.timedelta(seconds=s.fraud_recovery_sec),
            proposal=decide(funds), decide=decide,
            lifetime=self.lifetimes.after_credit_time,
            customer_of=acct.customer_id, funds=funds)
        op = AccountingOp(session_key="", kind=OpKind.RESERVE, call_key=req.call_key,
                          leg="authorize", account_pk=acct.pk, node_ip=req.nas_ip,
                          cli=req.calling, cld=cld, reserve=reserve,
                          session_id=req.session_id, user_name=req.user_name,
                          leg_conf_id=req.conf_id,
                          incoming_conf_id=req.incoming_conf_id or req.conf_id)

        def accept(granted: Reservation) -> Decision:
            attrs = self._common_attrs(acct) + [
                ("h323-credit-time", str(granted.credit_time)),
                ("h323-ivr-in", f"Tariff:{tariff.name}"),
                ("h323-ivr-in", f"PortaBilling_CLI:{req.calling}"),
                ("h323-ivr-in", f"PortaBilling_CompleteNumber:{cld}"),
                ("h323-ivr-in", f"PortaBilling_Auth_CLD:{cld}"),
                ("h323-ivr-in", f"DURATION:{granted.credit_time}"),
            ]
            return self._reply(True, ReturnCode.SUCCESS, "ok", attrs)

        def refuse(why: Refusal) -> Decision:
            if why == Refusal.LOGIN:
                return self._reply(False, ReturnCode.ACCOUNT_IN_USE,
                                   f"debit account {acct.account_id} already logged in to "
                                   "another session")
            if why == Refusal.CALLS:
                return self._reply(False, ReturnCode.ACCOUNT_IN_USE,
                                   f"concurrent-call limit of account {acct.account_id} or its "
                                   "customer reached")
            if why == Refusal.ACCOUNT:
                return self._reply(False, ReturnCode.INVALID_ACCOUNT, "account gone")
            code = (ReturnCode.INSUFFICIENT_FUNDS if acct.billing_model == BillingModel.DEBIT
                    else ReturnCode.CREDIT_LIMIT)
            return self._reply(False, code, "funds do not cover the first interval")

        return AuthorizationPlan(op, accept, refuse)

    def _translate(self, rule: str, number: str, what: str) -> str:
        if not rule:
            return number
        out = translate(rule, number)
        if out != number:
            log.info("Translation '%s' applied: '%s' -> '%s'", rule, number, out)
        else:
            log.info("Translation '%s' applied: '%s' unchanged", rule, number)
        return out

    def _price(self, tariff: TariffInfo, row: rating.RateRow, at: dt.datetime) -> rating.Price:
        if tariff.off_peak is None:
            log.info("Using peak rate, since no off-peak is defined")
            return row.price
        off = tariff.off_peak(at)
        log.info("Using %s rate", "off-peak" if off else "peak")
        return rating.price_at(row, off)

    # ---------------------------------------------------------- accounting
    def session_key(self, req: CallRequest) -> str:
        # Whole or digested, never cut: see billing/record_key.py.
        return record_key.session_key(req.nas_ip, req.status_type or "?",
                                      req.call_origin or "-", req.conf_id,
                                      req.incoming_conf_id, req.session_id)

    def accounting_op(self, req: CallRequest) -> AccountingOp:
        """Decide what an accounting record does; the store applies it."""
        key = self.session_key(req)
        status = req.status_type
        now = self.clock()
        if self.is_selftest(req):
            # radcheck's accounting probe: acknowledged, nothing stored.
            return AccountingOp(session_key=key, kind=OpKind.NOOP)
        acct = self.store.find_account(req.account_id) if req.account_id else None
        leg = req.call_origin or "originate"
        if status in ("Start", "1"):
            return AccountingOp(
                session_key=key, kind=OpKind.START, call_key=req.call_key, leg=leg,
                account_pk=acct.pk if acct else None, node_ip=req.nas_ip, cli=req.calling,
                cld=req.called, session_id=req.session_id, user_name=req.user_name,
                leg_conf_id=req.conf_id, incoming_conf_id=req.incoming_conf_id or req.conf_id,
                expires_at=now + dt.timedelta(seconds=self.lifetimes.started))
        if status in ("Interim-Update", "Alive", "3"):
            return AccountingOp(session_key=key, kind=OpKind.INTERIM, call_key=req.call_key,
                                expires_at=now + dt.timedelta(seconds=self.lifetimes.alive))
        if status not in ("Stop", "2"):
            log.info("Accounting %s: nothing to bill", status or "without Acct-Status-Type")
            return AccountingOp(session_key=key, kind=OpKind.NOOP)
        return self._stop(req, key, acct, leg, now)

    def _duration(self, req: CallRequest, now: dt.datetime
                  ) -> tuple[int, dt.datetime | None, dt.datetime | None]:
        """Duration and connect/disconnect times; ValueError when unusable."""
        connect = disconnect = None
        for name, text in (("connect", req.connect_time), ("disconnect", req.disconnect_time)):
            if not text:
                continue
            try:
                when, trusted = h323time.parse(text)
            except h323time.TimeFormatError as exc:
                log.warning("h323-%s-time ignored: %s", name, exc)
                continue
            if not trusted:
                log.warning("h323-%s-time '%s' is flagged unsynchronised", name, text)
            if name == "connect":
                connect = when
            else:
                disconnect = when
        if req.session_time:
            try:
                duration = int(req.session_time)
            except ValueError:
                raise ValueError(f"Acct-Session-Time {req.session_time!r} is not a number"
                                 ) from None
        elif connect and disconnect:
            duration = int((disconnect - connect).total_seconds())
        else:
            duration = 0
        if duration < 0:
            raise ValueError(f"negative duration {duration}")
        if duration > self.settings.max_duration_sec:
            raise ValueError(f"absurd duration {duration} s")
        threshold = dt.timedelta(seconds=self.settings.suspicious_time_sec)
        if disconnect is not None and abs(disconnect - now) > threshold:
            log.warning("gateway time %s differs from ours by more than %s; using ours",
                        disconnect, threshold)
            connect = disconnect = None
        if disconnect is None:
            disconnect = now
        if connect is None or duration:
            connect = disconnect - dt.timedelta(seconds=duration)
        return duration, connect, disconnect

    def _stop(self, req: CallRequest, key: str, acct: AccountView | None, leg: str,
              now: dt.datetime) -> AccountingOp:
        """What a Stop does: the charges and xDRs of its leg (no writing here)."""
        try:
            duration, connect, disconnect = self._duration(req, now)
        except ValueError as exc:
            log.error("Accounting record quarantined: %s", exc)
            return self._quarantine(req, key, str(exc))
        op = AccountingOp(session_key=key, kind=OpKind.STOP, call_key=req.call_key, leg=leg,
                          node_ip=req.nas_ip, cli=req.calling, cld=req.called,
                          logout_pk=acct.pk if acct is not None else None,
                          forget_at=now + dt.timedelta(
                              seconds=self.lifetimes.ended_memory(leg == "answer")))
        common = dict(conf_id=req.conf_id, cli=req.calling, connect_time=connect,
                      disconnect_time=disconnect, duration=duration,
                      disconnect_cause=req.disconnect_cause)
        if leg == "answer":
            return self._stop_answer_leg(req, key, acct, op, common)
        return self._stop_originate_leg(req, key, acct, op, now, common)

    @staticmethod
    def _quarantine(req: CallRequest, key: str, reason: str) -> AccountingOp:
        return AccountingOp(session_key=key, kind=OpKind.QUARANTINE, quarantine_reason=reason,
                            raw={k: [str(x) for x in v] for k, v in req.raw.items()})

    def _stop_answer_leg(self, req: CallRequest, key: str, acct: AccountView | None,
                         op: AccountingOp, common: dict[str, Any]) -> AccountingOp:
        log.info("End of call on incoming call leg from access NAS")
        conn = self.catalog.vendor_connection(req.remote_address, req.called, "from_vendor")
        if conn is None:
            log.info("No connection from vendor")
            return op
        xdr = self._rate_vendor(conn, req.called, common["duration"], common["connect_time"],
                                key, req, common)
        if xdr is not None:
            op.xdrs.append(xdr)
        return op

    def _stop_originate_leg(self, req: CallRequest, key: str, acct: AccountView | None,
                            op: AccountingOp, now: dt.datetime, common: dict[str, Any]
                            ) -> AccountingOp:
        # originate (or a gateway that reports one leg): the account pays, and
        # the vendor the call went to is owed. The connection's translation
        # rule turns the vendor's number format back into ours first, so both
        # are rated on the same number.
        log.info("Looking up vendor/connection")
        conn = self.catalog.vendor_connection(req.remote_address, req.called, "to_vendor")
        called = req.called
        if conn is None:
            log.info("Connection to vendor not found")
        else:
            log.info("Found connection %d '%s' to vendor '%s'", conn.pk, conn.name,
                     conn.vendor_name)
            try:
                called = self._translate(conn.translation_rule, req.called, "connection")
            except TranslationError as exc:
                log.error("Connection translation rule failed: %s", exc)
        node = self._node(req)
        if acct is None:
            # Acknowledged but neither charged nor forgotten: kept whole with
            # its reason for an admin (a typo in provisioning, a rogue
            # gateway), like a record that cannot be rated.
            reason = (f"unknown account {req.account_id!r}" if req.account_id
                      else "no account in the record (User-Name, PortaBilling_UserName)")
            log.error("Accounting record quarantined: %s", reason)
            return self._quarantine(req, key, reason)
        if node is None:
            log.warning("Accounting from an unknown node %s: no account charge", req.nas_ip)
        else:
            op.account_pk, op.billing_model, op.customer_pk = (acct.pk, acct.billing_model,
                                                               acct.customer_id)
            failure = self._charge_account(req, key, acct, node, called, op, now, common)
            if failure:
                return self._quarantine(req, key, f"account rating: {failure}")
        if conn is not None:
            xdr = self._rate_vendor(conn, called, common["duration"], common["connect_time"],
                                    key, req, common, translated=True)
            if xdr is not None:
                op.xdrs.append(xdr)
        return op

    def _charge_account(self, req: CallRequest, key: str, acct: AccountView, node: NodeInfo,
                        called: str, op: AccountingOp, now: dt.datetime,
                        common: dict[str, Any]) -> str:
        """The account's xDR added to ``op``; the reason when it cannot be rated."""
        tariff = self.catalog.tariff_for(acct.product_id, node.pk, called)
        if tariff is None:
            log.error("No accessibility for product %d on node %s: account not charged",
                      acct.product_id, node.name)
            return ""
        try:
            cld = self._translate(node.translation_rule, called, "node")
            xdr = self._rate(tariff, cld, common["duration"], common["connect_time"] or now,
                             "account", acct.pk, None, key + "|a", req.nas_ip, common,
                             "account")
        except (rating.RatingError, TranslationError) as exc:
            log.error("Account charge impossible: %s", exc)
            return str(exc)
        op.xdrs.append(xdr)
        log.info("Charging %s account %s %s", acct.billing_model, acct.account_id, xdr.amount)
        return ""

    def _rate_vendor(self, conn: ConnectionInfo, called: str, duration: int,
                     connect: dt.datetime | None, key: str, req: CallRequest,
                     common: dict[str, object], translated: bool = False) -> XDR | None:
        tariff = self.catalog.tariffs.get(conn.tariff_pk)
        if tariff is None:
            log.error("Connection %s has no tariff: vendor not charged", conn.name)
            return None
        try:
            cld = called if translated else self._translate(conn.translation_rule, called,
                                                            "connection")
            xdr = self._rate(tariff, cld, duration, connect or self.clock(), "vendor",
                             conn.vendor_pk, conn.pk, key + "|v", req.remote_address, common,
                             "vendor")
        except (rating.RatingError, TranslationError) as exc:
            log.error("Vendor charge impossible: %s", exc)
            return None
        log.info("Charging vendor %d '%s' %s", conn.vendor_pk, conn.vendor_name, xdr.amount)
        return xdr

    def _rate(self, tariff: TariffInfo, cld: str, duration: int, at: dt.datetime, table: str,
              owner_pk: int, connection_pk: int | None, xdr_key: str, peer_ip: str,
              common: dict[str, object], who: str) -> XDR:
        log.info("Setting up a new charge with tariff '%s' ...", tariff.name)
        row = rating.select_rate(tariff.rates, cld, at)
        price = self._price(tariff, row, at)
        c = rating.charge(duration, price, tariff.terms)
        log.info("Calculating %s's charge by tariff '%s'", who, tariff.name)
        if log.isEnabledFor(logging.INFO):  # the explanation is built for the log only
            log.info("Call to '%s' with duration %d seconds will be charged for %d seconds "
                     "and cost is %s %s by rate %d", cld, duration, c.charged_duration,
                     c.amount.normalize() if c.amount else 0, c.explain(price), row.rate_id)
        return XDR(table=table, owner_pk=owner_pk, connection_pk=connection_pk,
                   session_key=xdr_key, cld=cld, peer_ip=peer_ip,
                   charged_duration=c.charged_duration, amount=c.amount, tariff=tariff.name,
                   rate_prefix=row.prefix, **common)  # type: ignore[arg-type]
