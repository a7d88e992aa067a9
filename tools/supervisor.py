"""Worker processes driven from outside: the one place that starts `usage-detector worker`.

The demo, bench, chaos, replay and the integration tests all run real worker processes,
configured through the environment as in production. This module starts one (with a port and
a log file), says when it is ready (GET /healthz answers 200), shows its log when it is not,
and stops it (SIGTERM, then SIGKILL when it does not stop in time).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from localkafka import free_port

WORKER_COMMAND = [str(Path(sys.executable).with_name("usage-detector")), "worker"]

# One client for every request to the workers' endpoints (and any other local HTTP service):
# `httpx.get` builds a client, and with it a TLS context that loads the CA bundle (~30 ms of
# CPU), on every call, and readiness is polled ten times a second. A Client may be shared
# between threads.
HTTP = httpx.Client()


class WorkerExited(Exception):
    """A worker stopped, or never became ready, while it was expected to run; the message shows its log."""


def stop_together(workers: Sequence[WorkerProcess], timeout: float = 30.0) -> None:
    """SIGTERM every one first, then wait for each: their graceful stops (leaving the groups,
    flushing) overlap instead of adding up."""
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait_stopped(timeout)


class WorkerProcess:
    """One `usage-detector worker` process.

    `env` is laid over this process's environment; a web port is picked when it names none.
    `own_session` puts the worker in a session of its own, so that a Ctrl-C in the terminal
    reaches only the tool, which then stops the worker deliberately.
    """

    def __init__(self, env: Mapping[str, str], log_path: Path, own_session: bool = False) -> None:
        # Unbuffered: a worker killed with SIGKILL (chaos) leaves its last lines in its log.
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        self.env.setdefault("USAGE_DETECTOR_WEB_PORT", str(free_port()))
        self.port = int(self.env["USAGE_DETECTOR_WEB_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                WORKER_COMMAND, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=own_session
            )
        self.pid = self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def check_running(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise WorkerExited(f"the worker exited with code {code}; see its log {self.log_path}:\n{self.log_excerpt()}")

    def healthy(self) -> bool:
        try:
            return HTTP.get(f"{self.url}/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:  # refused while starting; 503 while recovering is not ready either
            return False

    def wait_ready(self, timeout: float, waiting: Callable[[], None] | None = None, poll_s: float = 0.1) -> float:
        """Seconds from the start until GET /healthz answered 200; `waiting` is called at each poll."""
        deadline = self.started + timeout
        while not self.healthy():
            self.check_running()
            if time.monotonic() > deadline:
                raise WorkerExited(
                    f"the worker was not ready within {timeout:.0f}s; see its log {self.log_path}:\n{self.log_excerpt()}"
                )
            if waiting is not None:
                waiting()
            time.sleep(poll_s)
        return time.monotonic() - self.started

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_excerpt(self) -> str:
        """The worker's error lines, or its last lines when it logged no error."""
        tail = self.log_tail(400).splitlines()
        errors = [line for line in tail if "[ERROR]" in line or "[CRITICAL]" in line]
        return "\n".join(errors[:5] or tail[-15:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `sig` and wait (see `wait_stopped`)."""
        self.send_signal(sig)
        return self.wait_stopped(timeout)

    def wait_stopped(self, timeout: float = 30.0) -> int:
        """Wait for the exit; SIGKILL when it has not exited within `timeout` (or on a Ctrl-C meanwhile)."""
        try:
            self.process.wait(timeout=timeout)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            self.process.kill()
            self.process.wait()
        return self.process.returncode

    def send_signal(self, sig: int = signal.SIGTERM) -> None:
        """Send `sig` without waiting (see `stop_together`)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)

    def processes(self) -> list[int]:
        """The worker's process and its children (its usage process): the worker's CPU and memory are theirs."""
        children = [int(stat.parent.name) for stat in Path("/proc").glob("[0-9]*/stat") if _parent_of(stat) == self.pid]
        return [self.pid, *children]

    def memory(self, field_name: str = "VmRSS") -> int:
        """A /proc/<pid>/status memory field (VmRSS, VmHWM) in bytes, summed over the worker's
        processes; 0 once they are gone."""
        total = 0
        for pid in self.processes():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(field_name + ":"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                pass
        return total

    def metric(self, name: str) -> float:
        """The sum of a metric's samples on the worker's /metrics, over all its labels."""
        families = text_string_to_metric_families(HTTP.get(f"{self.url}/metrics", timeout=5.0).text)
        return sum(sample.value for family in families for sample in family.samples if sample.name == name)

    def cpu_seconds(self) -> float:
        """User + system CPU time so far of the worker's processes (all their threads)."""
        total = 0.0
        for pid in self.processes():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                pass
        return total


def _parent_of(stat: Path) -> int | None:
    """The parent's pid in a /proc/<pid>/stat (None when the process is gone)."""
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
