"""The usage process of a worker, as `streams.usage_process` starts it: the usage app, run until stopped.

    python -m streams.usage_worker SOCKET PARENT_PID

Settings come from the environment the worker passes on; SOCKET is where it asks for health and metrics.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from pathlib import Path

from streams.app import create_usage_app
from streams.settings import Settings
from streams.worker import configure_logging, run_faust_worker

log = logging.getLogger("usage_detector")
PR_SET_PDEATHSIG = 1


def die_with(parent: int) -> None:
    """SIGKILL this process when its parent ends, however it ends (Linux); now, if it already has."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it ended before the line above
        os._exit(1)


def main(argv: list[str]) -> None:
    socket, parent = Path(argv[1]), int(argv[2])
    die_with(parent)
    configure_logging()
    settings = Settings()
    if settings.kafka_bootstrap_servers is None:
        raise SystemExit("usage process: KAFKA_BOOTSTRAP_SERVERS is not set; it is started by `usage-detector worker`")
    stage = create_usage_app(settings, settings.kafka_bootstrap_servers, socket)
    log.info("usage process of worker %d: firehose and process-usage", parent)
    run_faust_worker(stage.app)


if __name__ == "__main__":
    main(sys.argv)
