"""Consumer lag as /metrics reads it from Faust's consumer, in every state a scrape can find it.

The consumer stands in for Faust's (its `assignment`/`highwater` behave as aiokafka's do); the
real consumer at start and during a rebalance is in tests/integration/test_prometheus.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from faust.exceptions import ConsumerNotStarted
from faust.types import TP
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams.metrics import Metrics, TableCensus, consumer_lag

HITS = "tracking.hits"
CHANGELOG = "app-accounts-changelog"


@dataclass
class Consumer:
    ends: dict[TP, int | None]  # None: assigned, never fetched
    taken: set[TP] = field(default_factory=set)  # listed, then taken by a rebalance
    started: bool = True

    def assignment(self) -> set[TP]:
        if not self.started:
            raise ConsumerNotStarted("Consumer thread not yet started")
        return set(self.ends)

    def highwater(self, tp: TP) -> int | None:
        assert tp not in self.taken, "Partition is not assigned"  # as aiokafka's
        return self.ends[tp]


def app(consumer: Consumer, read: dict[TP, int]) -> Any:
    return SimpleNamespace(
        consumer=consumer, monitor=SimpleNamespace(tp_read_offsets=read), tables=SimpleNamespace(changelog_topics={CHANGELOG})
    )


def test_lag_is_the_records_after_the_last_read_one() -> None:
    read, unread, fresh = TP(HITS, 0), TP(HITS, 1), TP(HITS, 2)
    lag = dict(consumer_lag(app(Consumer({read: 10, unread: 4, fresh: 0}), {read: 6})))
    assert lag == {(HITS, 0): 3, (HITS, 1): 4, (HITS, 2): 0}


def test_partitions_of_unknown_end_changelogs_and_a_stopped_consumer_are_left_out() -> None:
    fetched, never_fetched, taken, changelog = TP(HITS, 0), TP(HITS, 1), TP(HITS, 2), TP(CHANGELOG, 0)
    consumer = Consumer({fetched: 5, never_fetched: None, taken: 7, changelog: 900}, taken={taken})
    assert dict(consumer_lag(app(consumer, {}))) == {(HITS, 0): 5}
    assert list(consumer_lag(app(Consumer({fetched: 5}, started=False), {}))) == []


def test_the_exposition_keeps_the_lag_family_when_no_partition_has_a_known_end() -> None:
    metrics = Metrics()
    metrics.watch(lambda: consumer_lag(app(Consumer({TP(HITS, 0): None}), {})), TableCensus({}))
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())}
    assert families["usage_detector_consumer_lag"].samples == []
