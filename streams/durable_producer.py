"""The worker's producer: acks=all with idempotence, so that no acknowledged record is lost or doubled.

Faust 0.15.3 sends `acks` from `producer_acks` but enables idempotence only for
`processing_guarantee="exactly_once"` (its aiokafka `Producer._settings_extra`), which would also
make every send transactional. This producer asks aiokafka for idempotence on its own: a send
retried after a broker failed over is written once and in order, and with `acks=all` it is
acknowledged only once `min.insync.replicas` brokers have it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_kafka

DURABLE = {"acks": "all", "enable_idempotence": True}


class IdempotentProducer(faust_kafka.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), **DURABLE}


def install(app: faust.App) -> None:
    """Make the producer the app creates (on its transport, once the transport is final) idempotent."""
    app.transport.Producer = IdempotentProducer  # type: ignore[misc]  # this transport's, not the class's
