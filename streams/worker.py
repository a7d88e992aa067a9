"""A worker: its topics checked or created, its two apps built, Faust's workers run until stopped.

`usage-detector worker` runs the accounts app here and the usage app in a child process
(`streams.usage_process`, `streams.usage_worker`): one worker, two cores' worth of room.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys

import faust

from streams.app import create_app
from streams.kafka_security import KafkaSecurity
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.usage_process import UsageProcess

log = logging.getLogger("usage_detector")


class Worker(faust.Worker):
    usage: UsageProcess | None = None

    async def _sentinel_task(self) -> None:
        # mode runs this to its end before closing the loop: 1 s at every stop, when everything
        # has already stopped. A few turns of the loop let the last callbacks run.
        await asyncio.sleep(0.05)

    def _shutdown_loop(self) -> None:
        super()._shutdown_loop()
        if self.usage is not None and self.usage.ended is not None:
            raise self.usage.ended  # once stopped: mode's `exiting` makes it exit code 1


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s")


def run_faust_worker(app: faust.App, usage: UsageProcess | None = None) -> None:
    """Runs `app` (and the worker's `usage` process, started before it) until stopped; Faust's
    worker exits the process itself."""
    # What is built so far lives as long as the worker. Frozen, a full collection no longer walks
    # it: in the storm bench, full collections paused the loop 47-307 ms each, 5-14 ms frozen.
    gc.collect()
    gc.freeze()
    worker = Worker(app, *([usage] if usage is not None else []), loglevel="info")
    worker.usage = usage
    if not sys.stdout.isatty():
        worker.spinner = None
    worker.execute_from_commandline()


def run_worker(settings: Settings, bootstrap_servers: str) -> int:
    """Blocks until the worker stops (SIGTERM, Ctrl-C)."""
    security = KafkaSecurity.from_settings(settings)  # a bad combination stops here, before any connection
    configure_logging()
    log.info("Kafka at %s over %s", bootstrap_servers, security.describe())
    created = ensure_topics(settings, bootstrap_servers)
    if created:
        log.info("created topics: %s", ", ".join(created))
    detector = create_app(settings, bootstrap_servers)
    run_faust_worker(detector.app, detector.usage)
    return 0
