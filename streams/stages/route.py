"""route-inputs: validate each billing event, dead-letter bad ones, re-key good ones by account.

Input topics belong to their producers (any partition count, any key), so every record goes on
to `<app>-account-events`, keyed by `account_id` and co-partitioned with the accounts table.
Hits and Conversion API events take the firehose stage instead (`streams.stages.firehose`).
"""

from __future__ import annotations

import faust
from faust.types import EventT

from models.errors import InvalidRecord
from models.internal import AccountEvent, encode_internal
from streams.dead_letter import DeadLetters
from streams.edge import Decoder, decode_safely
from streams.metrics import Metrics
from streams.stages import Agent


def route_inputs(
    *,
    decoders: dict[str, Decoder[AccountEvent]],
    account_events: faust.TopicT,
    dead_letters: DeadLetters,
    metrics: Metrics,
) -> Agent:
    consumed = {topic: metrics.consumed.labels(topic) for topic in decoders}

    async def route(stream: faust.StreamT) -> None:
        """Validate each billing event, dead-letter bad ones, re-key good ones by account."""
        event: EventT
        async for event in stream.events():
            topic = event.message.topic
            consumed[topic].inc()
            try:
                record = decode_safely(decoders[topic], topic, event.value)
            except InvalidRecord as error:
                await dead_letters.send(event, error)
                continue
            await account_events.send(key=record.account_id.encode(), value=encode_internal(record))

    return route
