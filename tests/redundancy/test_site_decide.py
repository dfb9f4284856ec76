"""The watchdog's judgement with a fake clock: no flip on one path, on a
lossy link or on a flapping primary; flips when paths agree N times; fails
back only after the hold times; the partition policy."""

from __future__ import annotations

import random

from redundancy.site.decide import Judge, Policy

DEAD = {"db": "dead", "replication": "dead", "radius": "dead"}
ALIVE = {"db": "alive", "replication": "alive", "radius": "alive"}


def run(judge: Judge, rounds, start: float = 0.0, step: float = 1.0):
    actions = []
    t = start
    for paths in rounds:
        a = judge.round(dict(paths), t)
        if a:
            actions.append((t, a))
            if a == "failback":
                judge.failed_back(t)
        t += step
    return actions


def test_flips_after_n_agreeing_rounds_only():
    j = Judge(Policy(failed_probes=3))
    assert run(j, [DEAD, DEAD]) == []
    assert run(j, [DEAD], start=2) == [(2, "standalone")]
    assert "paths agree" in j.last_reason


def test_one_path_never_decides():
    j = Judge(Policy(failed_probes=2))
    only_db = {"db": "dead", "replication": "unknown", "radius": "unknown"}
    assert run(j, [only_db] * 50) == []
    assert "never decide on one" in j.last_reason


def test_a_path_that_sees_the_primary_vetoes():
    j = Judge(Policy(failed_probes=2))
    cut_db = {"db": "dead", "replication": "alive", "radius": "dead"}
    assert run(j, [cut_db] * 100) == []
    assert "seen by replication" in j.last_reason


def test_lossy_link_never_flips():
    # 30% of probes lost on each path while the primary is healthy: a lost
    # probe reads as dead, but all paths never agree three rounds running
    rnd = random.Random(7)
    rounds = [{k: ("dead" if rnd.random() < 0.3 else "alive") for k in ALIVE}
              for _ in range(600)]
    j = Judge(Policy(failed_probes=3))
    assert run(j, rounds) == []


def test_agreement_must_be_consecutive():
    j = Judge(Policy(failed_probes=3))
    assert run(j, [DEAD, DEAD, ALIVE, DEAD, DEAD, ALIVE] * 20) == []


def test_failback_waits_for_hold_times_and_full_health():
    j = Judge(Policy(failed_probes=1, min_standalone=100, failback_healthy=30))
    assert run(j, [DEAD]) == [(0, "standalone")]
    half = {"db": "alive", "replication": "alive", "radius": "dead"}  # DB up, RADIUS not
    assert run(j, [half] * 200, start=1) == []
    # healthy from t=201: min stand-alone is long past; healthy hold is 30 s
    acts = run(j, [ALIVE] * 40, start=201)
    assert acts == [(231, "failback")]
    assert not j.standalone


def test_flapping_primary_does_not_flap_us():
    j = Judge(Policy(failed_probes=2, min_standalone=120, failback_healthy=30,
                     quiet_after_failback=600))
    acts = run(j, [DEAD, DEAD] + [ALIVE, DEAD] * 200)
    assert acts == [(1, "standalone")]  # healthy never lasts 30 s
    acts = run(j, [ALIVE] * 40, start=1000)
    assert acts == [(1030, "failback")]
    # right after the failback: an unknown witness/path keeps us in stand-by
    partial = {"db": "dead", "replication": "dead", "radius": "unknown"}
    assert run(j, [partial] * 100, start=1040) == []
    assert "every path must say dead" in j.last_reason
    # ... unless every path says dead
    assert run(j, [DEAD] * 2, start=1200) == [(1201, "standalone")]


def test_admin_switch_is_not_failed_back_automatically():
    j = Judge(Policy(failback_healthy=1, min_standalone=0), standalone=True,
              standalone_since=0.0, by_watchdog=False)
    assert run(j, [ALIVE] * 100) == []


def test_partition_policies():
    cut = {"db": "dead", "replication": "dead", "radius": "dead", "witness": "alive"}
    serve = Judge(Policy(failed_probes=2, partition_policy="serve"))
    # the source's default: both sites serve while cut off from each other
    assert run(serve, [cut] * 3) == [(1, "standalone")]
    witness = Judge(Policy(failed_probes=2, partition_policy="witness"))
    assert run(witness, [cut] * 50) == []
    lost = dict(cut, witness="unknown")
    assert run(witness, [lost] * 50) == []
    assert "witness" in witness.last_reason
    assert run(witness, [dict(cut, witness="dead")] * 2, start=100) == [(101, "standalone")]
