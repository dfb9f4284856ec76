"""The billing data model (SQLAlchemy 2).

Money is ``Decimal`` in code and ``NUMERIC(16,5)`` in the database (the
source keeps five decimal places), never float. Table and column names are
part of the contract with the check plugins and the redundancy tools.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from vigil.clock import utcnow

MONEY = Numeric(16, 5)


def _key(width: int) -> String:
    """A record's identity: compared byte for byte on MariaDB too (its
    default collation folds case and ignores trailing spaces, which made two
    different conf-ids one record). Values come from billing.record_key."""
    exact = mysql.VARCHAR(width, collation="utf8mb4_nopad_bin")
    return String(width).with_variant(exact, "mysql", "mariadb")


SESSION_KEY = _key(191)
CALL_KEY = _key(128)


class Base(DeclarativeBase):
    pass


class Node(Base):
    """A VoIP node that talks RADIUS to us (NexTone MSX, Cisco gateway)."""

    __tablename__ = "nodes"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    nas_ip: Mapped[str] = mapped_column(String(45), index=True)
    # Where its RADIUS packets come from; empty means the same as nas_ip.
    radius_source_ip: Mapped[str] = mapped_column(String(45), default="")
    radius_secret: Mapped[str] = mapped_column(String(128))
    translation_rule: Mapped[str] = mapped_column(String(255), default="")
    require_message_authenticator: Mapped[bool] = mapped_column(Boolean, default=False)
    # Where its RFC 5176 listener takes Disconnect-Requests (on nas_ip).
    disconnect_port: Mapped[int] = mapped_column(Integer, default=3799, server_default="3799")


class Tariff(Base):
    __tablename__ = "tariffs"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    free_seconds: Mapped[int] = mapped_column(Integer, default=0)
    connect_fee: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    post_call_surcharge: Mapped[Decimal] = mapped_column(Numeric(7, 3), default=Decimal(0))
    login_fee: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    # e.g. "wd{1-5} hr{18-23},wd{6-7}" (see billing.offpeak); empty: no off-peak
    off_peak_period: Mapped[str] = mapped_column(String(255), default="")
    round_charged_amount: Mapped[str] = mapped_column(String(8), default="")
    rates: Mapped[list[Rate]] = relationship(back_populates="tariff",
                                             cascade="all, delete-orphan")


class Destination(Base):
    __tablename__ = "destinations"
    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    country: Mapped[str] = mapped_column(String(64), default="")
    description: Mapped[str] = mapped_column(String(255), default="")


class Rate(Base):
    __tablename__ = "rates"
    __table_args__ = (UniqueConstraint("tariff_id", "prefix", "effective_from"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    tariff_id: Mapped[int] = mapped_column(ForeignKey("tariffs.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(String(32))
    interval_first: Mapped[int] = mapped_column(Integer, default=60)
    interval_next: Mapped[int] = mapped_column(Integer, default=60)
    price_first: Mapped[Decimal] = mapped_column(MONEY)
    price_next: Mapped[Decimal] = mapped_column(MONEY)
    off_interval_first: Mapped[int | None] = mapped_column(Integer, nullable=True)
    off_interval_next: Mapped[int | None] = mapped_column(Integer, nullable=True)
    off_price_first: Mapped[Decimal | None] = mapped_column(MONEY, nullable=True)
    off_price_next: Mapped[Decimal | None] = mapped_column(MONEY, nullable=True)
    forbidden: Mapped[bool] = mapped_column(Boolean, default=False)
    effective_from: Mapped[dt.datetime] = mapped_column(DateTime, default=dt.datetime(2000, 1, 1))
    tariff: Mapped[Tariff] = relationship(back_populates="rates")


class Product(Base):
    __tablename__ = "products"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    breakage: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    accessibility: Mapped[list[Accessibility]] = relationship(
        back_populates="product", cascade="all, delete-orphan")


class Accessibility(Base):
    """Which tariff a product's accounts are billed by on which node.

    ``cld`` is the access number (prefix of the number as dialled, before the
    node's translation rule); empty matches any call on that node.
    """

    __tablename__ = "accessibility"
    __table_args__ = (UniqueConstraint("product_id", "node_id", "cld"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"))
    tariff_id: Mapped[int] = mapped_column(ForeignKey("tariffs.id"))
    cld: Mapped[str] = mapped_column(String(32), default="")
    product: Mapped[Product] = relationship(back_populates="accessibility")


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    balance: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    credit_limit: Mapped[Decimal | None] = mapped_column(MONEY, nullable=True)
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    # Funds held by calls in progress of the customer's credit accounts (and
    # funds locks): kept as a running sum so that the database arbitrates a
    # reservation in one conditional UPDATE (see billing.store, docs/billing.md).
    reserved: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0), server_default="0")
    # Concurrent calls: the limit (none when NULL) and the running count of
    # its accounts' calls being authorized or in progress, checked in the
    # same conditional statement as the funds.
    max_calls: Mapped[int | None] = mapped_column(Integer, nullable=True)
    calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    # The identification sent in User-Name (a PIN, an ANI or a gateway's IP).
    account_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    billing_model: Mapped[str] = mapped_column(String(6), default="debit")  # debit | credit
    balance: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    credit_limit: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    voip_password: Mapped[str] = mapped_column(String(64), default="")
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    activation_date: Mapped[dt.date | None] = mapped_column(DateTime, nullable=True)
    expiration_date: Mapped[dt.date | None] = mapped_column(DateTime, nullable=True)
    preferred_lang: Mapped[str] = mapped_column(String(2), default="en")
    redirect_number: Mapped[str] = mapped_column(String(32), default="")
    # Funds held by this account's calls in progress and funds locks: the sum
    # of its active_calls.reserved, kept up to date in the same transactions.
    reserved: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0), server_default="0")
    # Simultaneous-login prevention, shared by every engine: the call holding
    # the (debit) account and until when ([Fraud_Detection] Recovery_Time_sec).
    login_call: Mapped[str] = mapped_column(CALL_KEY, default="", server_default="")
    login_until: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    max_calls: Mapped[int | None] = mapped_column(Integer, nullable=True)
    calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    customer: Mapped[Customer] = relationship()
    product: Mapped[Product] = relationship()


class Vendor(Base):
    __tablename__ = "vendors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    balance: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))


class Connection(Base):
    """A vendor connection, matched by remote IP, then ``PREFIX:...``, then ``ANY``."""

    __tablename__ = "connections"
    id: Mapped[int] = mapped_column(primary_key=True)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("vendors.id"))
    name: Mapped[str] = mapped_column(String(64), unique=True)
    remote_ip: Mapped[str] = mapped_column(String(64))
    tariff_id: Mapped[int] = mapped_column(ForeignKey("tariffs.id"))
    translation_rule: Mapped[str] = mapped_column(String(255), default="")
    # to_vendor: we send calls to them; from_vendor: they send calls to us
    direction: Mapped[str] = mapped_column(String(12), default="to_vendor")
    vendor: Mapped[Vendor] = relationship()


class _XDRColumns:
    """What account and vendor xDRs both record about a call."""

    id: Mapped[int] = mapped_column(primary_key=True)
    session_key: Mapped[str] = mapped_column(SESSION_KEY, unique=True)
    conf_id: Mapped[str] = mapped_column(String(128), default="")
    cli: Mapped[str] = mapped_column(String(64), default="")
    cld: Mapped[str] = mapped_column(String(64), default="")
    connect_time: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    disconnect_time: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    duration: Mapped[int] = mapped_column(Integer, default=0)
    charged_duration: Mapped[int] = mapped_column(Integer, default=0)
    amount: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    tariff: Mapped[str] = mapped_column(String(64), default="")
    rate_prefix: Mapped[str] = mapped_column(String(32), default="")
    disconnect_cause: Mapped[str] = mapped_column(String(16), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class AccountXDR(_XDRColumns, Base):
    __tablename__ = "account_xdrs"
    __table_args__ = (Index("ix_account_xdrs_created", "created_at"),
                      Index("ix_account_xdrs_account", "account_id", "connect_time"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    node_ip: Mapped[str] = mapped_column(String(45), default="")


class VendorXDR(_XDRColumns, Base):
    __tablename__ = "vendor_xdrs"
    __table_args__ = (Index("ix_vendor_xdrs_created", "created_at"),)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("vendors.id"))
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"))
    remote_ip: Mapped[str] = mapped_column(String(45), default="")


class ActiveCall(Base):
    """A call in progress: from authorization or Start until Stop.

    ``reserved`` holds the funds the call may spend (the price of its credit
    time), so concurrent calls on one account never spend the same money.
    """

    __tablename__ = "active_calls"
    id: Mapped[int] = mapped_column(primary_key=True)
    conf_id: Mapped[str] = mapped_column(CALL_KEY)
    # authorize | originate | answer | funds_lock
    leg: Mapped[str] = mapped_column(String(16), default="")
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), nullable=True)
    # Set when ``reserved`` is also held on the customer (credit limit).
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), nullable=True)
    node_ip: Mapped[str] = mapped_column(String(45), default="")
    cli: Mapped[str] = mapped_column(String(64), default="")
    cld: Mapped[str] = mapped_column(String(64), default="")
    reserved: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    # What a forced disconnect must name for the node to find the session.
    # (253: a RADIUS attribute's longest value, so they are never cut)
    session_id: Mapped[str] = mapped_column(String(253), default="", server_default="")
    user_name: Mapped[str] = mapped_column(String(253), default="", server_default="")
    # The leg's own h323-conf-id and the call's incoming one, whole (conf_id
    # above is the call key, digested when too long).
    leg_conf_id: Mapped[str] = mapped_column(String(253), default="", server_default="")
    incoming_conf_id: Mapped[str] = mapped_column(String(253), default="", server_default="")
    # The h323-credit-time granted (authorization rows).
    credit_time: Mapped[int | None] = mapped_column(Integer, nullable=True)
    __table_args__ = (UniqueConstraint("conf_id", "leg"),)


class EndedCall(Base):
    """A call whose Stop was applied, remembered until the gateway's last
    possible retransmit ([Call_Cleanup] Radius_Retransmits x Radius_Timeout),
    so a late Start never brings it back to the list."""

    __tablename__ = "ended_calls"
    conf_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    ended_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    forget_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)


class ProcessedAccounting(Base):
    """Every accounting record already handled, so a repeat never charges twice."""

    __tablename__ = "processed_accounting"
    session_key: Mapped[str] = mapped_column(SESSION_KEY, primary_key=True)
    processed_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)


class QuarantinedAccounting(Base):
    """Accounting records that cannot be rated (negative duration, absurd
    times): kept whole for an admin instead of being dropped or guessed."""

    __tablename__ = "quarantined_accounting"
    id: Mapped[int] = mapped_column(primary_key=True)
    session_key: Mapped[str] = mapped_column(SESSION_KEY, unique=True)
    reason: Mapped[str] = mapped_column(String(255))
    attributes: Mapped[str] = mapped_column(String(8000))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class AccountAdjustment(Base):
    """A top-up or manual charge by an admin (`vigil account adjust`): who, when, why.

    ``amount`` is the change to the account's funds (positive: top-up, negative:
    charge); ``balance_before``/``balance_after`` are the account's ``balance``
    column around it, written in the same transaction as the balance itself.
    """

    __tablename__ = "account_adjustments"
    __table_args__ = (Index("ix_account_adjustments_account", "account_id", "created_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    balance_before: Mapped[Decimal] = mapped_column(MONEY)
    balance_after: Mapped[Decimal] = mapped_column(MONEY)
    reason: Mapped[str] = mapped_column(String(255))
    actor: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class EngineHeartbeat(Base):
    """Every running engine process, on whichever server: ``vigil status``
    lists those seen lately, so a second server shows up by itself."""

    __tablename__ = "engine_heartbeats"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)  # host:pid
    host: Mapped[str] = mapped_column(String(64), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    listen: Mapped[str] = mapped_column(String(64), default="")  # address:auth/acct
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    seen_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    accepts: Mapped[int] = mapped_column(Integer, default=0)
    accountings: Mapped[int] = mapped_column(Integer, default=0)
    db_errors: Mapped[int] = mapped_column(Integer, default=0)
