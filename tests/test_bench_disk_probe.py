"""bench/disk_probe.py: the fsync figures printed beside the bench's p99."""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from disk_probe import FsyncProbe, figures  # noqa: E402


def test_figures_of_known_latencies() -> None:
    f = figures([0.5] * 98 + [12.0, 700.0])
    assert f.samples == 100 and f.p50_ms == 0.5 and f.max_ms == 700.0
    assert f.over_10ms == 2 and 12.0 <= f.p99_ms <= 700.0
    assert "max 700.0 ms, 2 over 10 ms" in f.line()
    assert figures([]).line() == "no fsync measured"


def test_probe_measures_real_fsyncs_and_leaves_no_file(tmp_path: Path) -> None:
    with FsyncProbe(tmp_path, every=0.01) as probe:
        time.sleep(0.3)
    assert probe.result.samples >= 5
    assert 0 < probe.result.p50_ms <= probe.result.max_ms
    assert list(tmp_path.iterdir()) == []
