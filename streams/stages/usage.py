"""process-usage: fold each account's evidence of usage into its usage record; publish what changed.

The usage stage runs in a process of its own (`streams.usage_worker`), apart from the accounts'
agents: a usage start is published whatever a storm of trials and verdicts costs the other process.
Each record is also sent on to `<app>-account-events`, where the account's decision reads it.
"""

from __future__ import annotations

import logging
import time

import faust
from faust.types import EventT, TableT

from models.codec import encode
from models.errors import InvalidRecord
from models.internal import USAGE_OBSERVED, USAGE_RECORDED, decode_internal, encode_internal
from policy.usage import observe
from streams.dead_letter import DeadLetters
from streams.metrics import Metrics
from streams.stages import Agent, event_time_ms, read_stored

log = logging.getLogger(__name__)


def process_usage(
    *,
    usage: TableT,
    usage_out: faust.TopicT,
    account_events: faust.TopicT,
    dead_letters: DeadLetters,
    metrics: Metrics,
) -> Agent:
    published = metrics.published.labels(usage_out.get_topic_name())

    async def step(message_event: EventT) -> None:
        try:  # evidence this worker cannot read, or a stored record it cannot (see read_stored)
            observed = decode_internal(USAGE_OBSERVED, message_event.value, "evidence of usage")
            key = observed.account_id.encode()
            raw = usage.get(key)
            recorded = read_stored(raw, USAGE_RECORDED, f"stored usage of {observed.account_id}")
        except InvalidRecord as error:
            await dead_letters.send(message_event, error)
            return
        result = observe(recorded, observed, now=event_time_ms(message_event))
        record = result.recorded
        # Publish (and send on) before saving: a crash in between reprocesses the evidence, and
        # an unchanged step publishes again what the saved record says.
        await usage_out.send(key=key, value=encode(record.usage))
        published.inc()
        if result.send_on:
            await account_events.send(key=key, value=encode_internal(record))
        if result.changed:
            usage[key] = encode_internal(record)
            metrics.usage_start_lag.observe(max(0.0, time.time() - record.usage.usage_started_at / 1000))
        elif raw is not None:
            usage[key] = raw  # repairs a changelog behind the local store (see process-accounts)

    async def process(stream: faust.StreamT) -> None:
        """Each evidence in its partition's order: one account's are all on one partition."""
        event: EventT
        async for event in stream.events():
            try:
                await step(event)
            except Exception:  # as Faust does with an exception escaping an agent: the event counts as processed
                log.exception("process-usage: processing a record of %s failed", event.message.tp)

    return process
