"""`usage-detector bench --tiny`: every stage but lookup runs and reports positive numbers (never timing targets)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.integration

STAGE_FIELDS = {
    "baseline": ("records", "seconds", "records_per_s", "mb_per_s", "cpu_us_per_record"),
    "detector": ("records", "seconds", "records_per_s", "ratio", "cpu_us_per_record", "rss_bytes"),
    "lag": ("hits", "samples", "achieved_hits_per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms"),
    "restart": ("accounts", "extra_hits", "healthy_s", "caught_up_s", "rss_bytes"),
}
SCALE_FIELDS = ("accounts", "steady_hits", "hits_per_s", "cpu_us_per_hit", "ratio", "rss_bytes", "bytes_per_account")
MACHINE_FIELDS = ("cpu", "cores", "memory_bytes", "python", "kafka_broker", "packages")


def test_tiny_bench_reports_every_stage(bootstrap_servers: str, tmp_path: Path) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers}
    # The lookup, share, storm and agents stages (more workers each, 30 s and up) are left to unit tests of
    # their reports and to real runs: the suite stays fast.
    stages = "throughput,lag,scale,restart"
    command = [str(Path(sys.executable).with_name("usage-detector")), "bench", "--tiny", "--stages", stages, "--out", str(tmp_path), "--label", "tiny"]
    done = subprocess.run(command, env=env, check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    results = orjson.loads((tmp_path / "tiny.json").read_bytes())
    for name in MACHINE_FIELDS:
        assert results["machine"][name], name
    assert results["settings"]["bench"]["tiny"] is True
    for stage, fields in STAGE_FIELDS.items():
        for name in fields:
            value = results[stage][name]
            assert isinstance(value, int | float) and value > 0, (stage, name, value)
    assert len(results["scale"]) >= 2
    for row in results["scale"]:
        for name in SCALE_FIELDS:
            assert isinstance(row[name], int | float) and row[name] > 0, (row["accounts"], name, row[name])
    assert "records/s" in done.stdout  # the table
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "tiny-scale.png").stat().st_size > 0
    else:
        assert "PNG skipped" in done.stdout
