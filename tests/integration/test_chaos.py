"""A small run of the chaos harness: SIGKILLed workers and scaling, checked against the oracle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def run_chaos(bootstrap_servers: str, tmp_path: Path, *options: str) -> tuple[dict, subprocess.CompletedProcess[str]]:
    report_path = tmp_path / "chaos.json"
    command = [
        str(Path(sys.executable).with_name("usage-detector")), "chaos",
        "--kafka-bootstrap-servers", bootstrap_servers,
        "--records", "8000", "--accounts", "400", "--kills", "3", "--broker-restarts", "0",
        "--rate", "1500", "--settle-timeout", "240",
        "--workdir", str(tmp_path / "workers"), "--output", str(report_path), *options,
    ]
    finished = subprocess.run(command, check=False, capture_output=True, text=True, timeout=420)
    assert report_path.exists(), finished.stdout[-3000:] + finished.stderr[-3000:]
    return json.loads(report_path.read_text()), finished


def worker_log_tails(workdir: Path, lines: int = 25) -> str:
    """What each worker said last: why the group did not catch up, when it did not."""
    return "\n".join(
        f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        for log in sorted(workdir.glob("worker-*.log"))
    )


def assert_nothing_lost(report: dict, finished: subprocess.CompletedProcess[str], workdir: Path) -> None:
    assert report["caught_up"], finished.stdout[-2000:] + "\n" + worker_log_tails(workdir)
    assert report["kills"] == 3 and report["rebalances"] >= 5
    assert report["bad_records"] > 0 and report["dead_letters_expected"] == report["bad_records"]
    assert (report["lost"], report["conflicting"], report["mismatched"]) == (0, 0, 0), report["examples"]
    assert (report["dead_letters_missing"], report["dead_letters_unexpected"]) == (0, 0)
    assert report["ledger"]["records_unaccounted"] == 0, report["ledger"]["unaccounted_examples"]
    assert finished.returncode == 0 and report["ok"]


def test_nothing_is_lost_or_conflicting_across_kills_and_rebalances(bootstrap_servers: str, tmp_path: Path) -> None:
    assert_nothing_lost(*run_chaos(bootstrap_servers, tmp_path, "--seed", "11"), tmp_path / "workers")


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
