"""`usage-detector demo` end to end, as a user runs it: its own worker, traffic and summary."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = 12


def test_demo_decides_every_account_and_shows_usage_after_the_trial_charge(bootstrap_servers: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.cli", "demo", "--accounts", str(ACCOUNTS), "--seed", "3"],
        cwd=ROOT,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers},
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    decided = re.search(r"accounts decided:\s+(\d+) of (\d+)", output)
    assert decided is not None, output[-4000:]
    assert (int(decided[1]), int(decided[2])) == (ACCOUNTS, ACCOUNTS), output[-4000:]
    changes = re.search(r"eligible -> discretionary changes: (\d+)", output)
    assert changes is not None and int(changes[1]) >= 1, output[-4000:]
    # The live line the audience sees when usage begins after the trial charge.
    assert "eligible (trial_charge_unused) -> discretionary (trial_charge_used)" in output
    assert "worker stopped, exit code 0" in output
