"""Whether the worker can do its job: tables recovered, not rebalancing, Kafka reachable, every input readable."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from typing import cast

import faust
from faust.tables.manager import TableManager

from streams.kafka_inputs import InputsConsumer
from streams.stages.firehose import Firehose

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


def readiness(app: faust.App, probe: BrokerProbe, firehose: Firehose) -> tuple[bool, dict[str, object]]:
    recovered = cast(TableManager, app.tables).recovery.completed.is_set()  # faust's TableManagerT omits it
    unreadable = sorted(
        cast(InputsConsumer, app.consumer).unreadable.batches() + firehose.unreadable.batches(),
        key=lambda batch: (batch.topic, batch.partition),
    )
    # The firehose starts once the tables are recovered; until then, and if it ever stopped, hits wait.
    reading = firehose.state == "running"
    ready = recovered and reading and not app.rebalancing and probe.reachable and not unreadable
    return ready, {
        "status": "ok" if ready else "not ready",
        "recovered": recovered,
        "firehose": firehose.state,
        "rebalancing": app.rebalancing,
        "kafka_reachable": probe.reachable,
        # Partitions stopped at a batch whose codec has no library here: what is wrong and what to install.
        "unreadable_inputs": [{**asdict(batch), "fix": batch.fix} for batch in unreadable],
    }


def watch_broker(app: faust.App, bootstrap_servers: str) -> BrokerProbe:
    probe = BrokerProbe(bootstrap_servers)

    @app.timer(PROBE_EVERY_S, name="probe-kafka")
    async def probe_kafka() -> None:
        await probe.check()

    return probe
