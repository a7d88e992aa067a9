"""A worker is two processes, one to whoever runs it: the usage process ends with the worker, however
the worker ends, and the worker stops when its usage process ends unasked."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.support.worker import WorkerProcess, unique_topics

pytestmark = pytest.mark.integration


def usage_process_of(worker: WorkerProcess) -> int:
    pids = worker.processes()
    assert len(pids) == 2, f"the worker and its usage process, not {pids}"
    child = pids[1]
    assert b"streams.usage_worker" in Path(f"/proc/{child}/cmdline").read_bytes()
    return child


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_worker_killed_takes_its_usage_process_with_it(bootstrap_servers: str, tmp_path: Path) -> None:
    worker = WorkerProcess(bootstrap_servers, unique_topics(), tmp_path)
    worker.wait_ready()
    child = usage_process_of(worker)
    assert worker.stop(signal.SIGKILL) == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "the usage process outlived its worker"


def test_a_worker_stops_when_its_usage_process_ends_unasked(bootstrap_servers: str, tmp_path: Path) -> None:
    worker = WorkerProcess(bootstrap_servers, unique_topics(), tmp_path)
    worker.wait_ready()
    child = usage_process_of(worker)
    os.kill(child, signal.SIGKILL)
    started = time.monotonic()
    assert worker.wait_stopped(60) == 1, "a crash: whoever runs the worker restarts it"
    print(f"the worker stopped {time.monotonic() - started:.1f}s after its usage process was killed")
    assert f"the usage process (pid {child}) was killed by signal 9; the worker stops" in worker.log_tail(400)


def test_a_worker_stopped_by_sigterm_stops_its_usage_process_gracefully(bootstrap_servers: str, tmp_path: Path) -> None:
    worker = WorkerProcess(bootstrap_servers, unique_topics(), tmp_path)
    worker.wait_ready()
    child = usage_process_of(worker)
    assert worker.stop(signal.SIGTERM) == 0
    assert not alive(child)
    log = worker.log_tail(400)
    assert f"stopping the usage process (pid {child})" in log and f"[{child}] [INFO] [^Worker]: Closing event loop" in log
