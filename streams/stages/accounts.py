"""process-accounts: fold each account event into the account's state; publish what changed."""

from __future__ import annotations

import time

import faust
from faust.types import TableT

from models.codec import encode
from models.errors import InvalidRecord
from models.internal import ACCOUNT_EVENT, ACCOUNT_STATE, decode_internal, encode_internal
from models.outputs import UsageState
from models.state import AccountState
from policy import apply
from policy.account import DuplicateWindow
from streams.dead_letter import DeadLetters
from streams.metrics import Metrics
from streams.stages import Agent


def record_transition(metrics: Metrics, before: AccountState | None, after: AccountState) -> None:
    old = before.eligibility.state if before is not None and before.eligibility else "none"
    new = after.eligibility.state if after.eligibility else "none"
    if old != new:
        metrics.transitions.labels(old, new).inc()


def process_accounts(
    *,
    accounts: TableT,
    usage_out: faust.TopicT,
    eligibility_out: faust.TopicT,
    signal_claims: faust.TopicT,
    dead_letters: DeadLetters,
    metrics: Metrics,
    window: DuplicateWindow,
) -> Agent:
    async def process(stream: faust.StreamT) -> None:
        """Fold each account event into the account's state; publish what changed."""
        async for message_event in stream.events():
            try:
                event = decode_internal(ACCOUNT_EVENT, message_event.value, "account event")
                key = event.account_id.encode()
                stored = accounts.get(key)
                state = None if stored is None else decode_internal(ACCOUNT_STATE, stored, f"stored state of {event.account_id}")
            except InvalidRecord as error:
                # A stored state this worker cannot read (most likely written by a newer version
                # during a rolling upgrade) is the account's history, and the changelog every
                # worker recovers from: it is left as it is, not overwritten. Starting the account
                # afresh instead would publish versions from 1 again (conflicting records) and
                # replace that history. The event is dead-lettered with where it was, to replay
                # once every worker reads the new version.
                await dead_letters.send(message_event, error)
                continue
            # Stamp records with the event's own time on this topic, not the clock: reprocessing
            # after a crash then rebuilds the very same records, never a conflicting version.
            accepted_at = round(message_event.message.timestamp * 1000)
            step = apply(state, event, now=accepted_at, window=window)
            published_usage_version = state.usage.version if state is not None and state.usage else 0
            # Publish before saving: a crash in between reprocesses the event and republishes.
            for record in step.records:
                topic = usage_out if isinstance(record, UsageState) else eligibility_out
                await topic.send(key=key, value=encode(record))
                metrics.published.labels(topic.get_topic_name()).inc()
                if isinstance(record, UsageState) and record.version > published_usage_version:
                    metrics.usage_start_lag.observe(time.time() - record.usage_started_at / 1000)
            for claim in step.claims:
                await signal_claims.send(key=claim.signal.digest.encode(), value=encode_internal(claim))
            # Saved even when unchanged. A worker killed after its local RocksDB got a write but
            # before the changelog did, restarted on the same state dir, is ahead of the changelog:
            # the event, read again, changes nothing there, and only this write repairs the
            # changelog, which every other worker recovers from.
            if step.changed:
                accounts[key] = encode_internal(step.state)
                record_transition(metrics, state, step.state)
            elif stored is not None:
                accounts[key] = stored
            if step.records:
                metrics.publish_latency.observe(max(0.0, time.time() - message_event.message.timestamp))

    return process
