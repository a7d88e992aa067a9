"""A small sparse chaos run whose replacement workers reopen the state a killed worker left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.chaos import assert_nothing_lost, run_chaos

pytestmark = pytest.mark.integration


def test_no_single_record_is_lost_when_killed_workers_restart_on_their_state(bootstrap_servers: str, tmp_path: Path) -> None:
    """Replacements reopen the RocksDB tables (and any usage filter) a killed worker left behind; the
    sparse workload makes every record's effect visible, so each one is accounted for."""
    report, finished = run_chaos(
        bootstrap_servers, tmp_path, "--seed", "12", "--workload", "sparse", "--reuse-state",
        "--usage-filter-save-interval-s", "0.5",
    )
    assert_nothing_lost(report, finished, tmp_path / "workers")
    assert report["ledger"]["records_observed"] == report["input_records"]
    assert report["ledger"]["records_without_effect"] == {}
    state_folders = list((tmp_path / "workers").glob("state-*"))
    assert len(state_folders) < report["worker_starts"], "no worker started on a state folder left by another"
