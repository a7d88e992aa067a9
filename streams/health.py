"""Whether the worker can do its job: in both its apps, tables recovered, not rebalancing, Kafka reachable, every
input readable; in the usage app, the firehose reading."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from typing import cast

import faust
from faust.tables.manager import TableManager

from streams.kafka_inputs import InputsConsumer, UnreadableBatch
from streams.stages.firehose import Firehose
from streams.usage_process import UsageProcess

log = logging.getLogger(__name__)
PROBE_EVERY_S = 2.0
PROBE_TIMEOUT_S = 2.0


class BrokerProbe:
    """Tries a TCP connection to the bootstrap servers; logs when Kafka goes away and comes back.

    The Kafka clients retry on their own (nothing is lost while the broker is away); this only
    makes the outage visible: in the log, once, and on /healthz for as long as it lasts.
    """

    def __init__(self, bootstrap_servers: str) -> None:
        self._servers = [s.strip().rsplit(":", 1) for s in bootstrap_servers.split(",") if s.strip()]
        self.reachable = True

    async def check(self) -> bool:
        for host, port in self._servers:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), PROBE_TIMEOUT_S)
            except (TimeoutError, OSError) as exc:
                last_error = exc
                continue
            writer.close()
            if not self.reachable:
                log.warning("Kafka is reachable again at %s:%s; resuming", host, port)
            self.reachable = True
            return True
        if self.reachable:
            log.error(
                "Kafka is unreachable (%r); the clients keep retrying and /healthz reports not ready until it returns",
                last_error,
            )
        self.reachable = False
        return False


def app_readiness(app: faust.App, probe: BrokerProbe, unreadable: list[UnreadableBatch]) -> dict[str, object]:
    """What both of a worker's apps need: tables recovered, not rebalancing, Kafka reachable, every input readable."""
    recovered = cast(TableManager, app.tables).recovery.completed.is_set()  # faust's TableManagerT omits it
    unreadable = sorted(unreadable + cast(InputsConsumer, app.consumer).unreadable.batches(), key=lambda b: (b.topic, b.partition))
    ready = recovered and not app.rebalancing and probe.reachable and not unreadable
    return {
        "status": "ok" if ready else "not ready",
        "recovered": recovered,
        "rebalancing": app.rebalancing,
        "kafka_reachable": probe.reachable,
        # Partitions stopped at a batch whose codec has no library here: what is wrong and what to install.
        "unreadable_inputs": [{**asdict(batch), "fix": batch.fix} for batch in unreadable],
    }


def usage_readiness(app: faust.App, probe: BrokerProbe, firehose: Firehose) -> tuple[bool, dict[str, object]]:
    body = app_readiness(app, probe, firehose.unreadable.batches())
    # The firehose starts once the tables are recovered; until then, and if it ever stopped, hits wait.
    reading = firehose.state == "running"
    ready = body["status"] == "ok" and reading
    return ready, {**body, "status": "ok" if ready else "not ready", "firehose": firehose.state}


def readiness(app: faust.App, probe: BrokerProbe, usage: UsageProcess) -> tuple[bool, dict[str, object]]:
    """The worker's: its accounts app's, and its usage process's as last seen (`usage`)."""
    body = app_readiness(app, probe, [])
    ready = body["status"] == "ok" and usage.ready
    # Every unreadable input partition of the worker in one list, wherever it is read.
    unreadable = [*cast(list[object], body["unreadable_inputs"]), *cast(list[object], usage.health.get("unreadable_inputs", []))]
    return ready, {**body, "status": "ok" if ready else "not ready", "unreadable_inputs": unreadable, "usage": usage.health}


def watch_broker(app: faust.App, bootstrap_servers: str) -> BrokerProbe:
    probe = BrokerProbe(bootstrap_servers)

    @app.timer(PROBE_EVERY_S, name="probe-kafka")
    async def probe_kafka() -> None:
        await probe.check()

    return probe
