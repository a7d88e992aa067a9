"""The stream topology, wired in one place: topics, tables, the firehose stage, the three agents and the timers.

    hits, capi ──firehose──────┐ (batches, its own consumer group; most hits dropped here)
    billing ──route-inputs─────┤
                               v
                         account-events ──process-accounts──> usage.state, refund.eligibility
                               ^                     │
                               │ verdicts            │ claims (by signal digest)
                               └───judge-signals <── signal-claims (and its own due records)

What each stage does with a record is its module's (`streams.stages`): decode, call the policy
core, write the table, send.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import chain
from typing import Any, cast

import faust
from faust.types import TableT

from streams import usage_filter
from streams.dead_letter import DeadLetters
from streams.edge import edge_decoders
from streams.kafka_inputs import UnreadableInputs
from streams.kafka_security import KafkaSecurity
from streams.metrics import Metrics, TableCensus, consumer_lag
from streams.settings import Settings
from streams.stages.accounts import process_accounts
from streams.stages.firehose import Firehose, FirehoseConfig, Sorter, kill_before_commit
from streams.stages.route import route_inputs
from streams.stages.signals import judge_signals
from streams.store import table_options
from streams.topics import TopicNames, Topics, TopicSpec, firehose_group
from streams.usage_filter import EarliestForwarded

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Topology:
    """Handles to what the topology declared, for views and tests."""

    accounts: TableT
    signals: TableT
    topics: TopicNames
    account_events: faust.TopicT
    signal_claims: faust.TopicT
    usage: faust.TopicT
    eligibility: faust.TopicT
    dead_letter: faust.TopicT
    route_inputs: faust.types.AgentT
    process_accounts: faust.types.AgentT
    judge_signals: faust.types.AgentT
    firehose: Firehose


def build_topology(app: faust.App, settings: Settings, metrics: Metrics, bootstrap_servers: str) -> Topology:
    registry = Topics.from_settings(settings)
    names = registry.names

    def declared(spec: TopicSpec) -> faust.TopicT:
        return app.topic(spec.name, **spec.topic_options(), key_serializer="raw", value_serializer="raw")

    # The producers' topics: any partitions, any configs. Faust reads billing; the firehose the rest.
    billing = app.topic(names.billing, key_serializer="raw", value_serializer="raw")
    account_events = declared(registry.account_events)
    signal_claims = declared(registry.signal_claims)
    usage_out = declared(registry.usage)
    eligibility_out = declared(registry.eligibility)
    dead_letter_out = declared(registry.dead_letter)
    accounts = app.Table(
        **registry.accounts_changelog.table_options(), options=table_options(settings.store), key_type=bytes, value_type=bytes
    )
    signals = app.Table(
        **registry.signals_changelog.table_options(), options=table_options(settings.store), key_type=bytes, value_type=bytes
    )
    dead_letters = DeadLetters(dead_letter_out, metrics)

    decoders = edge_decoders(names, settings.translator(), settings.max_record_bytes)
    route = app.agent(billing, name="route-inputs")(
        route_inputs(
            decoders={names.billing: decoders[names.billing]},
            account_events=account_events,
            dead_letters=dead_letters,
            metrics=metrics,
        )
    )
    forwarded = EarliestForwarded(settings.usage_filter_accounts)
    usage_filter.keep(
        app, forwarded, settings.state_dir / f"{settings.app_id}-usage-filter.json", settings.usage_filter_save_interval_s
    )
    fault = settings.fault_kill_before_commit_batch
    firehose = Firehose(
        FirehoseConfig(
            topics=names.firehose,
            group_id=firehose_group(settings.app_id),
            account_events=names.account_events,
            dead_letter=names.dead_letter,
            client={"bootstrap_servers": bootstrap_servers, **KafkaSecurity.from_settings(settings).aiokafka_config()},
            batch_records=settings.firehose_batch_records,
            linger_ms=settings.producer_linger_ms,
            session_timeout_s=settings.session_timeout_s,
        ),
        Sorter({topic: decoders[topic] for topic in names.firehose}, names.hits, forwarded, settings.max_record_bytes),
        metrics,
        UnreadableInputs(metrics.unreadable_inputs),
        before_commit=None if fault is None else kill_before_commit(fault),
        loop=app.loop,
    )
    app.service(cast(Any, firehose))  # started once the tables are recovered, stopped with the app
    process = app.agent(account_events, name="process-accounts")(
        process_accounts(
            accounts=accounts,
            usage_out=usage_out,
            eligibility_out=eligibility_out,
            signal_claims=signal_claims,
            dead_letters=dead_letters,
            metrics=metrics,
            window=settings.duplicate_window(),
        )
    )
    judge = app.agent(signal_claims, name="judge-signals")(
        judge_signals(
            signals=signals,
            account_events=account_events,
            signal_claims=signal_claims,
            dead_letters=dead_letters,
            metrics=metrics,
            crowded_claimants=settings.crowded_signal_claimants,
            batch_s=settings.judge_batch_s,
            holding=settings.holding(),
        )
    )

    census = TableCensus({"accounts": accounts, "signals": signals})
    metrics.watch(lambda: chain(consumer_lag(app), firehose.lag()), census)

    async def take_census() -> None:
        try:
            await census.take()
        except Exception:  # a rebalance may close a partition's store mid-walk: count next time
            log.warning("table census interrupted; the next one follows in %.0fs", settings.census_interval_s, exc_info=True)

    # Once at start (Faust starts tasks when the tables are recovered), so the census gauges are
    # there from the first scrapes on, then at every interval.
    app.task(take_census)
    app.timer(settings.census_interval_s, name="table-census")(take_census)

    return Topology(
        accounts=accounts,
        signals=signals,
        topics=names,
        account_events=account_events,
        signal_claims=signal_claims,
        usage=usage_out,
        eligibility=eligibility_out,
        dead_letter=dead_letter_out,
        route_inputs=route,
        process_accounts=process,
        judge_signals=judge,
        firehose=firehose,
    )
