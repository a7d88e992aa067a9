"""The stream topology.

    inputs ──route-inputs──> account-events ──process-accounts──> usage.state, refund.eligibility
                                   ^                     │
                                   │ verdicts            │ claims (by signal digest)
                                   └───judge-signals <── signal-claims

Agents only decode, call the policy core, write the table and send. Input topics belong to
their producers (any partition count, any key), so route-inputs re-keys everything by
`account_id` onto a topic co-partitioned with the accounts table. Trial signals cross
accounts, so they are re-keyed by signal, judged there, and the verdicts routed back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import faust
from faust.types import EventT
from pydantic import BaseModel, TypeAdapter

from models.abuse import SignalClaim, SignalState
from models.codec import decode, encode
from models.errors import InvalidRecord
from models.inputs import BillingEvent, ConversionApiEvent, TrackingHit
from models.internal import AccountEvent, UsageObserved
from models.outputs import UsageState
from models.state import AccountState
from policy import apply
from policy.abuse import CrowdedSignal, crowded, judge
from streams.dead_letter import dead_letter
from streams.hit_gate import DominatedHits
from streams.metrics import Metrics, TableCensus
from streams.settings import Settings
from streams.topics import TopicNames
from streams import usage_filter
from streams.usage_filter import EarliestForwarded

log = logging.getLogger(__name__)
HITS = TypeAdapter(TrackingHit)
CAPI = TypeAdapter(ConversionApiEvent)
BILLING = TypeAdapter(BillingEvent)
ACCOUNT_EVENT = TypeAdapter(AccountEvent)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def record_transition(metrics: Metrics, before: AccountState | None, after: AccountState) -> None:
    old = before.eligibility.state if before is not None and before.eligibility else "none"
    new = after.eligibility.state if after.eligibility else "none"
    if old != new:
        metrics.transitions.labels(old, new).inc()


def report_crowded(metrics: Metrics, crowd: CrowdedSignal) -> None:
    metrics.crowded_signals.labels(crowd.signal.kind).inc()
    log.warning(
        "signal %s %s has %d claimants; the first: %s. If its value is a placeholder or shared by right, "
        "list it in USAGE_DETECTOR_NEVER_EVIDENCE and replay (README, Operations)",
        crowd.signal.kind,
        crowd.signal.digest[:16],
        crowd.claimants,
        ", ".join(crowd.earliest),
    )


def decode_safely(decoder: Callable[[bytes | None], BaseModel], topic: str, value: bytes | None) -> BaseModel:
    """Decode at the edge; whatever goes wrong costs this one record (dead-lettered), never the agent."""
    try:
        return decoder(value)
    except InvalidRecord:
        raise
    except Exception as exc:  # a bug of ours, not bad input: keep the record and the traceback
        log.exception("could not process a record of %s; dead-lettering it", topic)
        raise InvalidRecord("unprocessable", f"{type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class Pipeline:
    """Handles to what the topology declared, for views and tests."""

    accounts: faust.Table
    signals: faust.Table
    topics: TopicNames


def build_pipeline(app: faust.App, settings: Settings, metrics: Metrics) -> Pipeline:
    names = TopicNames.from_settings(settings)
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    inputs = app.topic(*names.inputs, **raw)
    account_events = app.topic(names.account_events, partitions=settings.partitions, **raw)
    signal_claims = app.topic(names.signal_claims, partitions=settings.partitions, **raw)
    usage_out = app.topic(names.usage, **raw)
    eligibility_out = app.topic(names.eligibility, **raw)
    dead_letters = app.topic(names.dead_letter, **raw)
    accounts = app.Table("accounts", partitions=settings.partitions, key_type=bytes, value_type=bytes)
    signals = app.Table("signals", partitions=settings.partitions, key_type=bytes, value_type=bytes)

    edge = settings.translator()
    duplicate_window = settings.duplicate_window()
    limit = settings.max_record_bytes
    decoders: dict[str, Callable[[bytes | None], BaseModel]] = {
        names.hits: lambda value: edge.hit(decode(HITS, value, limit)),
        names.capi: lambda value: edge.capi(decode(CAPI, value, limit)),
        names.billing: lambda value: edge.billing(decode(BILLING, value, limit)),
    }
    forwarded = EarliestForwarded(settings.usage_filter_accounts)
    keep_usage_filter(
        app, forwarded, settings.state_dir / f"{settings.app_id}-usage-filter.json", settings.usage_filter_save_interval_s
    )
    dominated = DominatedHits(forwarded, limit)
    consumed = {topic: metrics.consumed.labels(topic) for topic in names.inputs}
    hits_topic = names.hits

    @app.agent(inputs, name="route-inputs")
    async def route_inputs(stream: faust.StreamT) -> None:
        """Validate each input record, dead-letter bad ones, re-key good ones by account."""
        event: EventT
        async for event in stream.events():
            message = event.message
            consumed[message.topic].inc()
            # The firehose: a valid hit of an account whose usage already started earlier is
            # dropped here, checked without pydantic; anything else takes the full decode.
            if message.topic == hits_topic and dominated(event.value):
                metrics.dominated.inc()
                continue
            try:
                record = decode_safely(decoders[message.topic], message.topic, event.value)
            except InvalidRecord as error:
                letter = dead_letter(
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                    key=event.key,
                    value=event.value,
                    error=error,
                    now=now_ms(),
                )
                await dead_letters.send(key=event.key, value=encode(letter))
                metrics.dead_letters.labels(message.topic, error.code).inc()
                continue
            if isinstance(record, UsageObserved) and not forwarded.admit(record.account_id, record.evidence.received_at):
                metrics.dominated.inc()
                continue
            await account_events.send(key=record.account_id.encode(), value=encode(record))

    @app.agent(account_events, name="process-accounts")
    async def process_accounts(stream: faust.StreamT) -> None:
        """Fold each account event into the account's state; publish what changed."""
        async for message_event in stream.events():
            event = ACCOUNT_EVENT.validate_json(message_event.value)
            key = event.account_id.encode()
            stored = accounts.get(key)
            state = AccountState.model_validate_json(stored) if stored is not None else None
            # Stamp records with the event's own time on this topic, not the clock: reprocessing
            # after a crash then rebuilds the very same records, never a conflicting version.
            accepted_at = round(message_event.message.timestamp * 1000)
            step = apply(state, event, now=accepted_at, window=duplicate_window)
            published_usage_version = state.usage.version if state is not None and state.usage else 0
            # Publish before saving: a crash in between reprocesses the event and republishes.
            for record in step.records:
                topic = usage_out if isinstance(record, UsageState) else eligibility_out
                await topic.send(key=key, value=encode(record))
                metrics.published.labels(topic.get_topic_name()).inc()
                if isinstance(record, UsageState) and record.version > published_usage_version:
                    metrics.usage_start_lag.observe((now_ms() - record.usage_started_at) / 1000)
            for claim in step.claims:
                await signal_claims.send(key=claim.signal.digest.encode(), value=encode(claim))
            # Saved even when unchanged. A worker killed after its local RocksDB got a write but
            # before the changelog did, restarted on the same state dir, is ahead of the changelog:
            # the event, read again, changes nothing there, and only this write repairs the
            # changelog, which every other worker recovers from.
            if step.state is not state:
                accounts[key] = encode(step.state)
                record_transition(metrics, state, step.state)
            elif stored is not None:
                accounts[key] = stored
            if step.records:
                metrics.publish_latency.observe(max(0.0, time.time() - message_event.message.timestamp))

    @app.agent(signal_claims, name="judge-signals")
    async def judge_signals(stream: faust.StreamT) -> None:
        """Decide, per signal, which trial came first; route verdicts back to the accounts."""
        async for value in stream:
            claim = SignalClaim.model_validate_json(value)
            key = claim.signal.digest.encode()
            stored = signals.get(key)
            state = SignalState.model_validate_json(stored) if stored is not None else None
            after, verdicts = judge(state, claim)
            if (crowd := crowded(state, after, settings.crowded_signal_claimants)) is not None:
                report_crowded(metrics, crowd)
            for verdict in verdicts:
                await account_events.send(key=verdict.account_id.encode(), value=encode(verdict))
            if after is not state:
                signals[key] = encode(after)
            elif stored is not None:  # saved even when unchanged, as in process-accounts
                signals[key] = stored

    census = TableCensus({"accounts": accounts, "signals": signals})
    metrics.watch(lambda: consumer_lag(app), census)

    @app.timer(settings.census_interval_s, name="table-census")
    async def take_census() -> None:
        try:
            await census.take()
        except Exception:  # a rebalance may close a partition's store mid-walk: count next time
            log.warning("table census interrupted; the next one follows in %.0fs", settings.census_interval_s, exc_info=True)

    return Pipeline(accounts=accounts, signals=signals, topics=names)


def keep_usage_filter(app: faust.App, forwarded: EarliestForwarded, path: Path, every_s: float) -> None:
    """Load the filter a previous run saved; save it every `every_s` and when the worker stops."""
    restored = usage_filter.load(path)
    forwarded.restore(restored)
    if restored:
        log.info("usage filter: %d accounts restored from %s", len(forwarded), path)

    @app.timer(every_s, name="save-usage-filter")
    async def save_usage_filter() -> None:
        await asyncio.to_thread(usage_filter.save, path, forwarded.snapshot())

    @app.on_before_shutdown.connect
    async def save_on_stop(app: faust.App, **kwargs: object) -> None:
        usage_filter.save(path, forwarded.snapshot())
        log.info("usage filter: %d accounts saved to %s", len(forwarded), path)


def consumer_lag(app: faust.App) -> Iterator[tuple[tuple[str, int], int]]:
    """Records behind the end of each assigned partition, as last read by this worker."""
    consumer = app.consumer
    read_offsets = app.monitor.tp_read_offsets
    for tp in consumer.assignment():
        read = read_offsets.get(tp)
        yield (tp.topic, tp.partition), max(0, consumer.highwater(tp) - (read + 1 if read is not None else 0))
