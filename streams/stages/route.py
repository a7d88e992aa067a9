"""route-inputs: validate each input record, dead-letter bad ones, re-key good ones by account.

Input topics belong to their producers (any partition count, any key), so every record goes on
to `<app>-account-events`, keyed by `account_id` and co-partitioned with the accounts table.
"""

from __future__ import annotations

import logging

import faust
from faust.types import EventT

from models.errors import InvalidRecord
from models.internal import AccountEvent, UsageObserved, encode_internal
from streams.dead_letter import DeadLetters
from streams.edge import Decoder
from streams.hit_gate import DominatedHits
from streams.metrics import Metrics
from streams.stages import Agent
from streams.usage_filter import EarliestForwarded

log = logging.getLogger(__name__)


def decode_safely(decoder: Decoder, topic: str, value: bytes | None) -> AccountEvent:
    """Decode at the edge; whatever goes wrong costs this one record (dead-lettered), never the agent."""
    try:
        return decoder(value)
    except InvalidRecord:
        raise
    except Exception as exc:  # a bug of ours, not bad input: keep the record and the traceback
        log.exception("could not process a record of %s; dead-lettering it", topic)
        raise InvalidRecord("unprocessable", f"{type(exc).__name__}: {exc}") from exc


def route_inputs(
    *,
    decoders: dict[str, Decoder],
    hits_topic: str,
    forwarded: EarliestForwarded,
    dominated: DominatedHits,
    account_events: faust.TopicT,
    dead_letters: DeadLetters,
    metrics: Metrics,
) -> Agent:
    consumed = {topic: metrics.consumed.labels(topic) for topic in decoders}

    async def route(stream: faust.StreamT) -> None:
        """Validate each input record, dead-letter bad ones, re-key good ones by account."""
        event: EventT
        async for event in stream.events():
            topic = event.message.topic
            consumed[topic].inc()
            # The firehose: a valid hit of an account whose usage already started earlier is
            # dropped here, checked without pydantic; anything else takes the full decode.
            if topic == hits_topic and dominated(event.value):
                metrics.dominated.inc()
                continue
            try:
                record = decode_safely(decoders[topic], topic, event.value)
            except InvalidRecord as error:
                await dead_letters.send(event, error)
                continue
            if isinstance(record, UsageObserved) and not forwarded.admit(record.account_id, record.evidence.received_at):
                metrics.dominated.inc()
                continue
            await account_events.send(key=record.account_id.encode(), value=encode_internal(record))

    return route
