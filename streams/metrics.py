"""Prometheus metrics of one worker, served at GET /metrics."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

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
        self.transitions = Counter(
            "usage_detector_eligibility_transitions",
            "Eligibility state changes published (from 'none' for an account's first decision)",
            ["from_state", "to_state"],
            registry=r,
        )

    def watch(self, consumer_lag: Any, tables: dict[str, Any]) -> None:
        """Gauges read at scrape time: consumer lag per partition, table sizes, accounts per state."""
        self.registry.register(_WorkerCollector(consumer_lag, tables))


class _WorkerCollector(Collector):
    def __init__(self, consumer_lag: Any, tables: dict[str, Any]) -> None:
        self._consumer_lag = consumer_lag
        self._tables = tables

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "usage_detector_consumer_lag", "Records not yet read, per assigned partition", labels=["topic", "partition"]
        )
        for (topic, partition), behind in self._consumer_lag():
            lag.add_metric([topic, str(partition)], behind)
        yield lag
        sizes = GaugeMetricFamily("usage_detector_table_keys", "Keys held in this worker's tables", labels=["table"])
        for name, table in self._tables.items():
            sizes.add_metric([name], len(table))
        yield sizes
        states = GaugeMetricFamily(
            "usage_detector_accounts", "Accounts held by this worker, by eligibility state", labels=["state"]
        )
        for state, count in sorted(count_states(self._tables["accounts"].values()).items()):
            states.add_metric([state], count)
        yield states


def count_states(stored_accounts: Iterable[bytes]) -> Tally[str]:
    return Tally(state for stored in stored_accounts if (state := eligibility_state_of(stored)) is not None)
