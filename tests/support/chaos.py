"""Small runs of the chaos harness (`usage-detector chaos`) and what every one of them must show."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.worker import SESSION_TIMEOUT_S


def run_chaos(bootstrap_servers: str, tmp_path: Path, *options: str) -> tuple[dict, subprocess.CompletedProcess[str]]:
    report_path = tmp_path / "chaos.json"
    command = [
        str(Path(sys.executable).with_name("usage-detector")), "chaos",
        "--kafka-bootstrap-servers", bootstrap_servers,
        "--records", "8000", "--accounts", "400", "--kills", "3", "--broker-restarts", "0",
        "--commit-kills", "3", "--commit-kill-within", "3",
        "--rate", "1500", "--settle-timeout", "240", "--session-timeout-s", SESSION_TIMEOUT_S,
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
