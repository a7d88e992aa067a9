"""`usage-detector demo` end to end, as a user runs it: its own worker, traffic and summary, and
then (`--console`) the worker kept up for the console until the user stops it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = 12
CONSOLE_LINE = re.compile(r"the console: (\S+)/console \(log in with the token (\S+)\)")


def test_demo_decides_every_account_shows_usage_after_the_trial_charge_and_keeps_the_console_open(bootstrap_servers: str) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "demo", "--accounts", str(ACCOUNTS), "--seed", "3", "--console"],
        cwd=ROOT,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert demo.stdout is not None
        for line in demo.stdout:  # until the demo says where its console is
            lines.append(line)
            if found := CONSOLE_LINE.search(line):
                break
        else:
            raise AssertionError("".join(lines)[-4000:])
        with httpx.Client(base_url=found[1], timeout=10) as client:
            assert client.post("/console/login", data={"token": found[2]}).status_code == 303
            deadline = time.monotonic() + 30
            while not (queue := client.get("/console/queue.json").json())["caught_up"] and time.monotonic() < deadline:
                time.sleep(0.5)
            assert queue["caught_up"] and {row["state"] for row in queue["rows"]} <= {"eligible", "discretionary"}
            assert any(row["state"] == "discretionary" for row in queue["rows"]), queue
        demo.send_signal(signal.SIGTERM)  # as Ctrl-C: the user is done
        rest, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    output = "".join(lines) + rest
    assert demo.returncode == 0, output[-4000:]
    decided = re.search(r"accounts decided:\s+(\d+) of (\d+)", output)
    assert decided is not None, output[-4000:]
    assert (int(decided[1]), int(decided[2])) == (ACCOUNTS, ACCOUNTS), output[-4000:]
    changes = re.search(r"eligible -> discretionary changes: (\d+)", output)
    assert changes is not None and int(changes[1]) >= 1, output[-4000:]
    # The live line the audience sees when usage begins after the trial charge.
    assert "eligible (trial_charge_unused) -> discretionary (trial_charge_used)" in output
    assert "worker stopped, exit code 0" in output
