"""Prometheus metrics of one worker, served at GET /metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, get_args

from faust.exceptions import ConsumerNotStarted
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from models.outputs import EligibilityState
from streams.topics import ACCOUNTS_TABLE

log = logging.getLogger(__name__)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_STATE_MARK = b'"eligibility":{"state":"'


def eligibility_state_of(stored: bytes) -> str | None:
    """The eligibility state inside a stored account, without parsing it all (scrapes stay cheap).

    Relies on `state` being the first field of the eligibility record; a unit test checks it.
    """
    start = stored.find(_STATE_MARK)
    if start < 0:
        return None
    start += len(_STATE_MARK)
    return stored[start : stored.index(b'"', start)].decode()


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.consumed = Counter("usage_detector_records_consumed", "Input records read", ["topic"], registry=r)
        self.dominated = Counter(
            "usage_detector_evidence_dropped",
            "Hits and Conversion API events dropped early: the account's usage had already started earlier",
            registry=r,
        )
        self.dead_letters = Counter(
            "usage_detector_dead_letters", "Records sent to the dead-letter topic", ["topic", "code"], registry=r
        )
        self.published = Counter("usage_detector_records_published", "Output records sent", ["topic"], registry=r)
        self.usage_start_lag = Histogram(
            "usage_detector_usage_start_lag_seconds",
            "From the first evidence's received_at to its usage.state record being written",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.publish_latency = Histogram(
            "usage_detector_decision_publish_latency_seconds",
            "From an account event entering the account's partition to the records it caused being sent",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.crowded_signals = Counter(
            "usage_detector_crowded_signals",
            "Signals whose claimants reached USAGE_DETECTOR_CROWDED_SIGNAL_CLAIMANTS (counted once on the way up)",
            ["kind"],
            registry=r,
        )
        self.transitions = Counter(
            "usage_detector_eligibility_transitions",
            "Eligibility state changes published (from 'none' for an account's first decision)",
            ["from_state", "to_state"],
            registry=r,
        )
        self.ready = Gauge(
            "usage_detector_ready", "1 while GET /healthz answers 200 (see its body for why not), read at scrape time", registry=r
        )
        self.unreadable_inputs = Gauge(
            "usage_detector_unreadable_input_partitions",
            "1 for each assigned input partition stopped at a record batch the worker cannot read (its codec's library "
            "is missing: see the log and /healthz); absent otherwise",
            ["topic", "partition"],
            registry=r,
        )

    def watch(self, consumer_lag: Any, census: TableCensus) -> None:
        """Gauges read at scrape time: consumer lag per partition, and the last table census."""
        self.registry.register(_WorkerCollector(consumer_lag, census))


class TableCensus:
    """Keys per table and accounts per eligibility state, counted in the background.

    Counting walks every key (RocksDB keeps no count): a million accounts take seconds, so a
    scrape must not do it on the event loop. `take` yields to the loop every few thousand keys.
    """

    def __init__(self, tables: Mapping[str, Any]) -> None:
        self._tables = tables
        self.sizes: dict[str, int] = {}
        self.states: Tally[str] = Tally()
        self.taken_at: float | None = None

    @property
    def counts_accounts(self) -> bool:
        return ACCOUNTS_TABLE in self._tables

    async def take(self, yield_every: int = 5_000) -> None:
        sizes: dict[str, int] = {}
        states: Tally[str] = Tally()
        for name, table in self._tables.items():
            count = 0
            for stored in table.values():
                count += 1
                if name == ACCOUNTS_TABLE and (state := eligibility_state_of(stored)) is not None:
                    states[state] += 1
                if count % yield_every == 0:
                    await asyncio.sleep(0)
            sizes[name] = count
        self.sizes, self.states, self.taken_at = sizes, states, time.time()


class _WorkerCollector(Collector):
    def __init__(self, consumer_lag: Any, census: TableCensus) -> None:
        self._consumer_lag = consumer_lag
        self._census = census

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "usage_detector_consumer_lag", "Records not yet read, per assigned partition", labels=["topic", "partition"]
        )
        for (topic, partition), behind in self._consumer_lag():
            lag.add_metric([topic, str(partition)], behind)
        yield lag
        census = self._census
        sizes = GaugeMetricFamily("usage_detector_table_keys", "Keys held in this worker's tables (last census)", labels=["table"])
        for name, count in census.sizes.items():
            sizes.add_metric([name], count)
        yield sizes
        states = GaugeMetricFamily(
            "usage_detector_accounts", "Accounts held by this worker, by eligibility state (last census)", labels=["state"]
        )
        # Every state, 0 included: a worker holding none has counted them too. Not by the usage
        # process, which holds no accounts: the worker's metrics sum both processes' (`merged_metrics`).
        if census.taken_at is not None and census.counts_accounts:
            for state in get_args(EligibilityState):
                states.add_metric([state], census.states.get(state, 0))
        yield states
        if census.taken_at is not None:
            yield GaugeMetricFamily(
                "usage_detector_census_age_seconds", "Since the table census above was taken", value=time.time() - census.taken_at
            )


def consumer_lag(app: Any) -> Iterator[tuple[tuple[str, int], int]]:
    """Records behind the end of each partition this worker's agents read, as far as it knows.

    Left out, so that a scrape never fails and never reports a made-up lag: everything before the
    consumer started; the tables' changelogs (recovery and standbys read them, not an agent, so no
    read offset is kept and their "lag" would be their length); a partition not fetched since it
    was assigned (its end is unknown until a fetch answers: at start, and while it is paused).
    """
    consumer = app.consumer
    try:
        assigned = consumer.assignment()
    except ConsumerNotStarted:
        return
    changelogs = app.tables.changelog_topics
    read_offsets = app.monitor.tp_read_offsets
    for tp in assigned:
        if tp.topic in changelogs:
            continue
        try:
            end = consumer.highwater(tp)
        except (AssertionError, AttributeError):  # a rebalance (in the consumer's thread) took it meanwhile
            continue
        if end is None:
            continue
        read = read_offsets.get(tp)
        yield (tp.topic, tp.partition), max(0, end - (read + 1 if read is not None else 0))


def count_states(stored_accounts: Iterable[bytes]) -> Tally[str]:
    return Tally(state for stored in stored_accounts if (state := eligibility_state_of(stored)) is not None)
