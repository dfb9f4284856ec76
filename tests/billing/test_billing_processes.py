"""Several engine processes: how many, the parent's hung-process watchdog, and
reading every process's counters file (billing/processes.py, billing/stats_files.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from billing.app import processes
from billing.processes import STARTUP_SEC, LoopStamps, ProcessGroup, cores, cpu_plan
from billing.settings import cpu_affinity
from billing.stats_files import (
    GONE,
    HUNG,
    LIVE,
    forget_extra_processes,
    index_of,
    process_started_at,
    read_engine,
    stats_file_name,
)
from vigil import statefile
from vigil.config import load


def _config(tmp_path: Path, radius: str = "", fraud: str = "") -> object:
    path = tmp_path / "vigil.conf"
    path.write_text(f"[Site]\nState_Dir={tmp_path}\n[Radius]\n{radius}"
                    f"[Fraud_Detection]\n{fraud}")
    path.chmod(0o600)
    return load(str(path))


@pytest.mark.unit
@pytest.mark.parametrize(("radius", "fraud", "expected"), [
    ("", "Active=No\n", "cores"),  # the default: one per core
    ("", "Active=Yes\nTest_Mode=Yes\n", "cores"),  # test mode only logs: no refusal
    ("", "Active=Yes\n", "cores"),  # login holds are the database's: per core too
    ("Processes=1\n", "Active=No\n", 1),  # kept possible
    ("Processes=3\n", "Active=Yes\n", 3),  # the operator's number wins
])
def test_how_many_processes(tmp_path, radius, fraud, expected) -> None:
    want = cores() if expected == "cores" else expected
    assert processes(_config(tmp_path, radius, fraud)) == want  # type: ignore[arg-type]


@pytest.mark.unit
@pytest.mark.parametrize(("text", "value"), [
    ("Auto", "auto"), ("no", "no"), (" 1 ", (1,)), ("0,2-3", (0, 2, 3)), ("3,1-3", (3, 1, 2)),
])
def test_cpu_affinity_reads_auto_no_and_taskset_lists(text, value) -> None:
    assert cpu_affinity(text) == value


@pytest.mark.unit
@pytest.mark.parametrize("text", ["", "yes", "0,", "-1", "2-1", "a-b", "0-", "1.5", "4096",
                                  "0-99999999999999999999", "٣"])
def test_cpu_affinity_refuses_anything_else(text) -> None:
    with pytest.raises(ValueError):
        cpu_affinity(text)


@pytest.mark.unit
@pytest.mark.parametrize(("setting", "n", "allowed", "plan"), [
    ("auto", 2, {0, 1}, [0, 1]),
    ("auto", 3, {0, 1}, [0, 1, 0]),  # more processes than CPUs: round robin
    ("auto", 2, {2, 5}, [2, 5]),  # the CPUs taskset or a cpuset left this program
    ("auto", 1, {0, 1}, [None]),  # one process alone is never pinned
    ("no", 2, {0, 1}, [None, None]),
    ((1, 0), 3, {0, 1}, [1, 0, 1]),  # the operator's order
    ((0, 7), 2, {0, 1}, [0, 0]),  # a CPU it may not use is left out
    ((7,), 2, {0, 1}, [None, None]),  # none usable: not pinned rather than refused
])
def test_cpu_plan(setting, n, allowed, plan) -> None:
    assert cpu_plan(setting, n, allowed) == plan


@pytest.mark.unit
def test_cores_follow_the_affinity_mask() -> None:
    assert cores() == len(os.sched_getaffinity(0))


@pytest.mark.unit
def test_counters_file_names_round_trip() -> None:
    assert stats_file_name(0) == "radiusd-stats.json"
    assert stats_file_name(3) == "radiusd-stats-3.json"
    for i in (0, 1, 12):
        assert index_of(stats_file_name(i)) == i
    assert index_of("radiusd-stats-x.json") is None
    assert index_of("radiusd-stats.json.tmp") is None


def _write(state: Path, index: int, pid: int, updated_at: float, **counters: int) -> None:
    statefile.write_json(state / stats_file_name(index), {
        "pid": pid, "started_at": int(updated_at) - 100, "updated_at": int(updated_at),
        **counters})


@pytest.mark.unit
def test_only_live_processes_are_summed(tmp_path) -> None:
    """Live: pid runs, counters fresh. Gone: the pid is dead, or it runs a process
    started after the file was last written (a reused pid). Hung: the pid runs the
    writer, whose counters stopped."""
    me = os.getpid()
    started = process_started_at(me)
    assert started is not None and abs(started - time.time()) < 7 * 86400
    now = time.time()
    _write(tmp_path, 0, me, now, access_requests=5, committer_backlog=2)
    _write(tmp_path, 1, me, now, access_requests=7, committer_backlog=3)
    _write(tmp_path, 2, 0, now, access_requests=1000)  # no such process
    _write(tmp_path, 3, me, started - 100, access_requests=1000)  # pid reused since
    stats = read_engine(tmp_path, max_age=60)
    assert [p.state for p in stats.processes] == [LIVE, LIVE, GONE, GONE]
    assert stats.total("access_requests") == 12 and stats.total("committer_backlog") == 5
    assert not stats.hung
    # the same process, silent since a second after it started: hung
    hung = tmp_path / "hung"
    hung.mkdir()
    _write(hung, 1, me, started + 1)
    stats = read_engine(hung, max_age=0.0)
    assert [(p.index, p.state) for p in stats.processes] == [(1, HUNG)]
    assert stats.total("access_requests") == 0


@pytest.mark.unit
def test_files_of_processes_beyond_the_count_are_forgotten(tmp_path) -> None:
    for i in range(4):
        _write(tmp_path, i, os.getpid(), time.time())
    (tmp_path / "radcheck.json").write_text("{}")
    removed = forget_extra_processes(tmp_path, 2)
    assert sorted(p.name for p in removed) == ["radiusd-stats-2.json", "radiusd-stats-3.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "radcheck.json", "radiusd-stats-1.json", "radiusd-stats-1.json.lock",
        "radiusd-stats.json", "radiusd-stats.json.lock"]
    forget_extra_processes(tmp_path, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "radcheck.json", "radiusd-stats.json", "radiusd-stats.json.lock"]


@pytest.mark.unit
def test_loop_stamps_are_seen_through_a_second_mapping_of_the_slots() -> None:
    stamps = LoopStamps(3)
    write = stamps.writer(2)
    write(123.5)
    assert [stamps.get(i) for i in range(3)] == [0.0, 0.0, 123.5]
    stamps.clear(2)
    assert stamps.get(2) == 0.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.integration  # real processes stand in for engine processes
def test_the_watchdog_kills_a_loop_that_stopped_and_spares_the_others() -> None:
    clock = Clock()
    group = ProcessGroup(3, lambda i: 0, hung_after=10, clock=clock)
    procs = [subprocess.Popen(["sleep", "60"]) for _ in range(3)]
    try:
        for i, p in enumerate(procs):
            group.pids[p.pid] = i
            group._forked_at[p.pid] = clock.now
        group.stamps.stamp(0, clock.now)  # in its loop
        group.stamps.stamp(1, clock.now)  # in its loop
        # process 2 never reached its loop: judged against STARTUP_SEC
        clock.now += 9.5
        group.stamps.stamp(0, clock.now)
        assert group.check_loops() == []
        clock.now += 1.0  # process 1: 10.5 s without a stamp
        assert group.check_loops() == [procs[1].pid]
        assert procs[1].wait(10) == -signal.SIGKILL
        assert group.check_loops() == []  # killed once, then left to the restart path
        clock.now += STARTUP_SEC
        group.stamps.stamp(0, clock.now)
        assert group.check_loops() == [procs[2].pid]
        assert procs[2].wait(10) == -signal.SIGKILL
        assert procs[0].poll() is None
        group._stop = True  # stopping: loops that end are expected
        clock.now += 3600
        assert group.check_loops() == []
    finally:
        for p in procs:
            p.kill()
            p.wait()


@pytest.mark.integration  # real processes stand in for engine processes
def test_no_watchdog_when_hung_process_sec_is_0() -> None:
    clock = Clock()
    group = ProcessGroup(1, lambda i: 0, hung_after=0, clock=clock)
    proc = subprocess.Popen(["sleep", "60"])
    try:
        group.pids[proc.pid] = 0
        group._forked_at[proc.pid] = clock.now
        clock.now += 86400
        assert group.check_loops() == [] and proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.unit
def test_vigil_status_lists_the_engine_processes_of_this_server(tmp_path) -> None:
    from billing.cli import processes_section

    now = time.time()
    _write(tmp_path, 0, os.getpid(), now, access_requests=3, accounting_requests=4,
           committer_backlog=2)
    _write(tmp_path, 1, os.getpid(), now, access_requests=1, committer_backlog=5)
    _write(tmp_path, 2, 0, now - 30)
    title, lines, rows = processes_section(_config(tmp_path))  # type: ignore[arg-type]
    assert title == "engine_processes"
    assert lines[0] == "engine processes on this server: 2 live, committer backlog 7"
    assert lines[1].startswith(f"  process 0   pid {os.getpid():<8} live  counters ")
    assert "3 authentications, 4 accountings, committer backlog 2" in lines[1]
    assert lines[3].startswith("  process 2   pid -        gone  counters 3"), lines[3]
    assert [(r["index"], r["state"]) for r in rows] == [(0, LIVE), (1, LIVE), (2, GONE)]


@pytest.mark.unit
def test_vigil_status_says_nothing_where_no_engine_ran(tmp_path) -> None:
    from billing.cli import processes_section

    assert processes_section(_config(tmp_path)) == ("engine_processes", [], [])  # type: ignore[arg-type]
