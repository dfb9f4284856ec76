"""Wiring: configuration -> store, catalog, engine, RADIUS server."""

from __future__ import annotations

import gc
import importlib
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine as SAEngine

from billing.cached_store import CachedStore
from billing.calls import Lifetimes
from billing.catalog import Catalog
from billing.chores import Chore
from billing.db import make_engine
from billing.db_clock import BillingClock, SweepCutoff
from billing.engine import Engine, EngineSettings
from billing.heartbeat import Heartbeat
from billing.server import RadiusServer, load_dictionary
from billing.stats_files import stats_file_name
from billing.store import SqlStore
from vigil.config import Config


def engine_settings(cfg: Config) -> EngineSettings:
    return EngineSettings(
        selftest_nas=cfg.get("Self Test", "NAS-IP-Address"),
        selftest_user=cfg.get("Self Test", "User-Name"),
        selftest_password=cfg.get("Self Test", "Password").reveal(),
        fraud_active=cfg.get("Fraud_Detection", "Active"),
        fraud_test_mode=cfg.get("Fraud_Detection", "Test_Mode"),
        fraud_recovery_sec=cfg.get("Fraud_Detection", "Recovery_Time_sec"),
        default_lifetime=cfg.get("Call_Cleanup", "Default_Lifetime"),
        incoming_session_lifetime=cfg.get("Call_Cleanup", "Incoming_Session_Lifetime"),
        alive_interval=cfg.get("Call_Cleanup", "Alive_Interval"),
        radius_retransmits=cfg.get("Call_Cleanup", "Radius_Retransmits"),
        radius_timeout=cfg.get("Call_Cleanup", "Radius_Timeout"),
        suspicious_time_sec=cfg.get("Global", "Suspicious_Time_Threshold_sec"),
        max_credit_time=cfg.get("Radius", "Max_Credit_Time_sec"),
        max_duration_sec=cfg.get("Radius", "Max_Call_Duration_sec"),
        cisco_vsa_prefix=cfg.get("Radius", "Cisco_VSA_Prefix"),
    )


def state_dir(cfg: Config) -> Path:
    return cfg.path("Site", "State_Dir")


# How often an engine re-reads the database's clock (billing/db_clock.py).
CLOCK_ANCHOR_SEC = 5.0


def build_engine(cfg: Config, db: SAEngine | None = None,
                 clock: BillingClock | None = None) -> Engine:
    """The engine tells time by the database's clock, anchored here (the
    database answers at start, or the catalog could not be loaded either)."""
    db = db or make_engine(cfg)
    catalog = Catalog(db)
    catalog.load()
    clock = clock or BillingClock.of_database(db)
    clock.anchor()
    return Engine(build_store(cfg, db), catalog, engine_settings(cfg), clock=clock)


def build_store(cfg: Config, db: SAEngine) -> Any:
    # a jump of billing time forgets no call early (the delta's neither)
    s = engine_settings(cfg)
    lifetimes = Lifetimes(s.radius_retransmits, s.radius_timeout, s.alive_interval,
                          s.incoming_session_lifetime, s.default_lifetime)
    cutoff = SweepCutoff(speedup=lifetimes.sweep_speedup(s.max_credit_time))
    if cfg.get("Site", "Role") == "secondary":
        # The secondary site's store (silent in stand-by; stand-by snapshot +
        # delta database in stand-alone) belongs to the redundancy room; it is
        # looked up by name so that billing does not import that room.
        return importlib.import_module("redundancy.site.standalone_store").site_store(
            cfg, db, sweep_cutoff=cutoff)
    sql = SqlStore(db)
    sql.sweep_cutoff = cutoff
    return CachedStore(sql, cfg.get("Radius", "Account_Cache_sec"))


def processes(cfg: Config) -> int:
    """Engine processes to run: ``[Radius] Processes``; 0 (the default) one per
    core. Any process may answer any request: money, login holds and
    processed Stops are the database's (docs/billing.md)."""
    from billing.processes import cores

    return cfg.get("Radius", "Processes") or cores()


def build_server(cfg: Config, db: SAEngine | None = None, index: int = 0,
                 reuse_port: bool = False) -> RadiusServer:
    """One engine process; ``index`` > 0 for the extra processes of a cluster."""
    db = db or make_engine(cfg, pre_ping=False, multi_statements=True)
    clock = BillingClock.of_database(db)
    engine = build_engine(cfg, db, clock)
    dictionary = cfg.get("Radius", "Dictionary") or None
    server = RadiusServer(
        engine, engine.catalog, load_dictionary(dictionary), cfg.get("Radius", "Host"),
        cfg.get("Radius", "Auth_Port"), cfg.get("Radius", "Acct_Port"),
        cfg.get("Self Test", "Shared_Secret").reveal().encode(),
        commit_batch=cfg.get("Radius", "Commit_Batch"),
        # SQLite takes one writer at a time: a second batch would only wait.
        commit_threads=1 if db.dialect.name == "sqlite" else cfg.get("Radius", "Commit_Threads"),
        duplicate_ttl=cfg.get("Radius", "Duplicate_Cache_sec"),
        stats_path=state_dir(cfg) / stats_file_name(index), reuse_port=reuse_port,
        max_wait=2 * cfg.get("Master", "Query_Timeout_sec"),
        stats_interval=cfg.get("Radius", "Stats_Interval_sec"),
        reload_interval=cfg.get("Node IP Cache", "Cache_Cleanup_Time_sec"))
    # First among the database chores: the expiry sweep after it uses fresh time.
    server.db_chores.chores.insert(0, Chore("clock", CLOCK_ANCHOR_SEC, clock.anchor))
    if cfg.get("Site", "Role") != "secondary":
        # Heartbeats go to the billing master only: on a secondary site the
        # database is a replica, and a write there would break replication.
        auth, acct = server.ports
        beat = Heartbeat(db, f"{cfg.get('Radius', 'Host')}:{auth}/{acct}",
                         server.counters.snapshot, clock=clock)
        server.db_chores.chores.append(Chore("heartbeat", 5.0, beat.beat))
        server.on_stop.append(beat.leave)
    return server


SWITCH_INTERVAL = 0.0005  # seconds: see tune_process


def tune_process() -> None:
    """The interpreter settings of an engine process, once it is built."""
    # The committer and the look-up workers wait on the database several
    # times per batch; each time, they get the GIL back only when the packet
    # loop gives it up, at the latest after the switch interval (5 ms by
    # default). A batch of seven statements then waited up to 35 ms for the
    # GIL, and every reply of the batch with it (py-spy: the committer's time
    # sat in PyMySQL's send and receive). A short interval hands the GIL over
    # at once; the loop loses a little CPU to the extra switches.
    sys.setswitchinterval(SWITCH_INTERVAL)
    # What was built at start (catalog, tariffs, dictionaries, modules)
    # lives as long as the process: out of the collector's sight, a full
    # collection no longer walks it, and a young one runs less often (every
    # request allocates, few objects outlive it).
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
