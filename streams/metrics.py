"""Prometheus metrics of one worker, served at GET /metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
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
