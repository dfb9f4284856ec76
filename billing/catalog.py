"""Nodes, connections, tariffs and rates, cached in memory.

Re-read every ``[Node IP Cache] Cache_Cleanup_Time_sec`` and on SIGHUP. A
reload that fails keeps the previous catalog (a database hiccup must not
make every node unknown).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from billing import models as m
from billing import offpeak
from billing.rating import Price, RateRow, TariffTerms, index_rates

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeInfo:
    pk: int
    name: str
    nas_ip: str
    source_ip: str
    secret: bytes
    translation_rule: str
    require_message_authenticator: bool


@dataclass(frozen=True)
class ConnectionInfo:
    pk: int
    name: str
    vendor_pk: int
    vendor_name: str
    remote_ip: str
    tariff_pk: int
    translation_rule: str
    direction: str


@dataclass
class TariffInfo:
    pk: int
    name: str
    currency: str
    terms: TariffTerms
    off_peak: offpeak.Matcher | None
    rates: dict[str, list[RateRow]]


class Catalog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.lock = threading.Lock()
        self.nodes_by_source: dict[str, list[NodeInfo]] = {}
        self.node_ips: set[str] = set()
        self.connections: list[ConnectionInfo] = []
        self.accessibility: dict[tuple[int, int], list[tuple[str, int]]] = {}
        self.tariffs: dict[int, TariffInfo] = {}
        self.loaded_at: dt.datetime | None = None

    def load(self) -> bool:
        try:
            self._load()
        except SQLAlchemyError as exc:
            log.error("catalog reload failed, keeping the previous one: %s", exc)
            return False
        return True

    def _load(self) -> None:
        with self.engine.connect() as conn:
            nodes = conn.execute(select(m.Node.__table__)).all()
            by_source: dict[str, list[NodeInfo]] = {}
            node_ips: set[str] = set()
            for n in nodes:
                info = NodeInfo(n.id, n.name, n.nas_ip, n.radius_source_ip or n.nas_ip,
                                n.radius_secret.encode(), n.translation_rule or "",
                                bool(n.require_message_authenticator))
                by_source.setdefault(info.source_ip, []).append(info)
                node_ips.add(n.nas_ip)
                node_ips.add(info.source_ip)
            vendors = {v.id: v.name for v in conn.execute(select(m.Vendor.__table__)).all()}
            conns = [ConnectionInfo(c.id, c.name, c.vendor_id, vendors.get(c.vendor_id, "?"),
                                    c.remote_ip.strip(), c.tariff_id, c.translation_rule or "",
                                    c.direction)
                     for c in conn.execute(select(m.Connection.__table__)).all()]
            access: dict[tuple[int, int], list[tuple[str, int]]] = {}
            for a in conn.execute(select(m.Accessibility.__table__)).all():
                access.setdefault((a.product_id, a.node_id), []).append((a.cld or "", a.tariff_id))
            for lst in access.values():
                lst.sort(key=lambda x: -len(x[0]))
            tariffs: dict[int, TariffInfo] = {}
            for t in conn.execute(select(m.Tariff.__table__)).all():
                round_to = Decimal(t.round_charged_amount) if t.round_charged_amount else None
                terms = TariffTerms(t.free_seconds, Decimal(t.connect_fee),
                                    Decimal(t.post_call_surcharge), round_to)
                tariffs[t.id] = TariffInfo(t.id, t.name, t.currency, terms,
                                           offpeak.parse(t.off_peak_period or ""), {})
            rows: dict[int, list[RateRow]] = {}
            for r in conn.execute(select(m.Rate.__table__)).all():
                off = None
                if r.off_price_first is not None and r.off_interval_first:
                    off = Price(r.off_interval_first, r.off_interval_next or r.off_interval_first,
                                Decimal(r.off_price_first),
                                Decimal(r.off_price_next if r.off_price_next is not None
                                        else r.off_price_first))
                rows.setdefault(r.tariff_id, []).append(RateRow(
                    r.prefix, Price(r.interval_first, r.interval_next, Decimal(r.price_first),
                                    Decimal(r.price_next)),
                    off, bool(r.forbidden), r.effective_from, r.id))
            for tid, tariff_rates in rows.items():
                if tid in tariffs:
                    tariffs[tid].rates = index_rates(tariff_rates)
        with self.lock:
            self.nodes_by_source = by_source
            self.node_ips = node_ips
            self.connections = conns
            self.accessibility = access
            self.tariffs = tariffs
            self.loaded_at = dt.datetime.now(dt.UTC)
        log.info("catalog loaded: %d nodes, %d connections, %d tariffs", len(nodes),
                 len(conns), len(tariffs))

    # --------------------------------------------------------------- lookups
    def node_for(self, source_ip: str, nas_ip: str | None) -> NodeInfo | None:
        """The node a packet comes from: by source address, NAS-IP-Address
        telling apart nodes that share one source address."""
        candidates = self.nodes_by_source.get(source_ip, [])
        for n in candidates:
            if n.nas_ip == nas_ip:
                return n
        # A request without NAS-IP-Address (or naming the source address
        # itself) is the node's if only one node sends from that address.
        if len(candidates) == 1 and nas_ip in (None, "", source_ip):
            return candidates[0]
        return None

    def tariff_for(self, product_pk: int, node_pk: int, dialled: str) -> TariffInfo | None:
        for cld, tariff_pk in self.accessibility.get((product_pk, node_pk), []):
            if dialled.startswith(cld):
                return self.tariffs.get(tariff_pk)
        return None

    def is_node_ip(self, ip: str) -> bool:
        return ip in self.node_ips

    def vendor_connection(self, remote_ip: str, cld: str,
                          direction: str = "to_vendor") -> ConnectionInfo | None:
        """Remote IP first, then the longest ``PREFIX:`` of the number, then ``ANY``.

        A call to one of our own nodes goes to no vendor.
        """
        conns = [c for c in self.connections if c.direction == direction]
        if remote_ip:
            for c in conns:
                if c.remote_ip == remote_ip:
                    return c
            if direction == "to_vendor" and self.is_node_ip(remote_ip):
                return None
        best: ConnectionInfo | None = None
        for c in conns:
            if c.remote_ip.upper().startswith("PREFIX:"):
                prefix = c.remote_ip[7:]
                if cld.startswith(prefix) and (
                        best is None or len(prefix) > len(best.remote_ip) - 7):
                    best = c
        if best is not None:
            return best
        if direction == "to_vendor":
            for c in conns:
                if c.remote_ip.upper() == "ANY":
                    return c
        return None
