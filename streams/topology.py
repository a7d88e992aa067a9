"""The stream topology, wired in one place: topics, tables, stages and timers, in two Faust apps.

    hits, capi ──firehose──> usage-evidence ──process-usage──> usage.state      (the usage app: a process of its own)
                                                  │ usage records
    billing ──route-inputs─────┐                  v
                               v
                         account-events ──process-accounts──> refund.eligibility
                               ^                     │
                               │ verdicts            │ claims (by signal digest)
                               └───judge-signals <── signal-claims (and its own due records)

A worker runs both: the accounts app, and the usage app in a child process (`streams.usage_process`), so
that a storm of trials and verdicts never delays a usage start. Each table has one input topic.
What each stage does with a record is its module's (`streams.stages`): decode, call the policy
core, write the table, send.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import chain
from typing import Any, cast

import faust
from faust.types import TableT

from streams import usage_filter
from streams.dead_letter import DeadLetters
from streams.edge import billing_decoder, evidence_decoders
from streams.kafka_inputs import UnreadableInputs
from streams.kafka_security import KafkaSecurity
from streams.metrics import Metrics, TableCensus, consumer_lag
from streams.settings import Settings
from streams.stages.accounts import process_accounts
from streams.stages.firehose import Firehose, FirehoseConfig, Sorter, kill_before_commit
from streams.stages.route import route_inputs
from streams.stages.signals import judge_signals
from streams.stages.usage import process_usage
from streams.store import table_options
from streams.topics import ACCOUNTS_TABLE, SIGNALS_TABLE, USAGE_TABLE, TopicNames, Topics, TopicSpec, firehose_group
from streams.usage_filter import EarliestForwarded

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UsageTopology:
    """Handles to what the usage app declared, for views and tests."""

    usage: TableT
    topics: TopicNames
    usage_evidence: faust.TopicT
    usage_out: faust.TopicT
    account_events: faust.TopicT
    dead_letter: faust.TopicT
    process_usage: faust.types.AgentT
    firehose: Firehose


@dataclass(frozen=True)
class AccountsTopology:
    """Handles to what the accounts app declared, for views and tests."""

    accounts: TableT
    signals: TableT
    topics: TopicNames
    account_events: faust.TopicT
    signal_claims: faust.TopicT
    eligibility: faust.TopicT
    dead_letter: faust.TopicT
    route_inputs: faust.types.AgentT
    process_accounts: faust.types.AgentT
    judge_signals: faust.types.AgentT


def declared(app: faust.App, spec: TopicSpec) -> faust.TopicT:
    return app.topic(spec.name, **spec.topic_options(), key_serializer="raw", value_serializer="raw")


def table(app: faust.App, settings: Settings, changelog: TopicSpec) -> TableT:
    """A table of raw bytes backed by `changelog`, named as `streams.topics` names it whatever the app's id."""
    topic = app.topic(
        changelog.name,
        **changelog.topic_options(),
        key_serializer="raw",
        value_serializer="raw",
        compacting=True,
        deleting=False,
        acks=False,
        internal=True,
    )
    return app.Table(
        **changelog.table_options(),
        changelog_topic=topic,
        options=table_options(settings.store),
        key_type=bytes,
        value_type=bytes,
    )


def take_census_now_and_then(
    app: faust.App,
    settings: Settings,
    metrics: Metrics,
    tables: Mapping[str, TableT],
    lag: Callable[[], Iterable[tuple[tuple[str, int], int]]],
) -> None:
    census = TableCensus(tables)
    metrics.watch(lag, census)

    async def take_census() -> None:
        try:
            await census.take()
        except Exception:  # a rebalance may close a partition's store mid-walk: count next time
            log.warning("table census interrupted; the next one follows in %.0fs", settings.census_interval_s, exc_info=True)

    # Once at start (Faust starts tasks when the tables are recovered), so the census gauges are
    # there from the first scrapes on, then at every interval.
    app.task(take_census)
    app.timer(settings.census_interval_s, name="table-census")(take_census)


def build_usage_topology(app: faust.App, settings: Settings, metrics: Metrics, bootstrap_servers: str) -> UsageTopology:
    registry = Topics.from_settings(settings)
    names = registry.names
    usage_evidence = declared(app, registry.usage_evidence)
    usage_out = declared(app, registry.usage)
    account_events = declared(app, registry.account_events)
    dead_letter_out = declared(app, registry.dead_letter)
    usage = table(app, settings, registry.usage_changelog)
    dead_letters = DeadLetters(dead_letter_out, metrics)

    forwarded = EarliestForwarded(settings.usage_filter_accounts)
    usage_filter.keep(
        app, forwarded, settings.state_dir / f"{settings.app_id}-usage-filter.json", settings.usage_filter_save_interval_s
    )
    fault = settings.fault_kill_before_commit_batch
    firehose = Firehose(
        FirehoseConfig(
            topics=names.firehose,
            group_id=firehose_group(settings.app_id),
            usage_evidence=names.usage_evidence,
            dead_letter=names.dead_letter,
            client={"bootstrap_servers": bootstrap_servers, **KafkaSecurity.from_settings(settings).aiokafka_config()},
            batch_records=settings.firehose_batch_records,
            linger_ms=settings.producer_linger_ms,
            session_timeout_s=settings.session_timeout_s,
        ),
        Sorter(evidence_decoders(names, settings.translator(), settings.max_record_bytes), names.hits, forwarded, settings.max_record_bytes),
        metrics,
        UnreadableInputs(metrics.unreadable_inputs),
        before_commit=None if fault is None else kill_before_commit(fault),
        loop=app.loop,
    )
    app.service(cast(Any, firehose))  # started once the tables are recovered, stopped with the app
    process = app.agent(usage_evidence, name="process-usage")(
        process_usage(
            usage=usage, usage_out=usage_out, account_events=account_events, dead_letters=dead_letters, metrics=metrics
        )
    )
    take_census_now_and_then(app, settings, metrics, {USAGE_TABLE: usage}, lambda: chain(consumer_lag(app), firehose.lag()))
    return UsageTopology(
        usage=usage,
        topics=names,
        usage_evidence=usage_evidence,
        usage_out=usage_out,
        account_events=account_events,
        dead_letter=dead_letter_out,
        process_usage=process,
        firehose=firehose,
    )


def build_accounts_topology(app: faust.App, settings: Settings, metrics: Metrics) -> AccountsTopology:
    registry = Topics.from_settings(settings)
    names = registry.names
    # The producers' topic: any partitions, any configs.
    billing = app.topic(names.billing, key_serializer="raw", value_serializer="raw")
    account_events = declared(app, registry.account_events)
    signal_claims = declared(app, registry.signal_claims)
    eligibility_out = declared(app, registry.eligibility)
    dead_letter_out = declared(app, registry.dead_letter)
    accounts = table(app, settings, registry.accounts_changelog)
    signals = table(app, settings, registry.signals_changelog)
    dead_letters = DeadLetters(dead_letter_out, metrics)

    route = app.agent(billing, name="route-inputs")(
        route_inputs(
            decoders={names.billing: billing_decoder(settings.translator(), settings.max_record_bytes)},
            account_events=account_events,
            dead_letters=dead_letters,
            metrics=metrics,
        )
    )
    process = app.agent(account_events, name="process-accounts")(
        process_accounts(
            accounts=accounts,
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
    take_census_now_and_then(app, settings, metrics, {ACCOUNTS_TABLE: accounts, SIGNALS_TABLE: signals}, lambda: consumer_lag(app))
    return AccountsTopology(
        accounts=accounts,
        signals=signals,
        topics=names,
        account_events=account_events,
        signal_claims=signal_claims,
        eligibility=eligibility_out,
        dead_letter=dead_letter_out,
        route_inputs=route,
        process_accounts=process,
        judge_signals=judge,
    )
