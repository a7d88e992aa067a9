import logging
from collections import Counter as Tally

import pytest
from prometheus_client import Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams.merged_metrics import merged_exposition
from streams.metrics import Metrics

Values = dict[tuple[str, tuple[tuple[str, str], ...]], float]
LAG = "usage_detector_usage_start_lag_seconds"
LATENCY = "usage_detector_decision_publish_latency_seconds"


def values(exposition: bytes) -> Values:
    found: Values = {}
    for family in text_string_to_metric_families(exposition.decode()):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in found, f"{key} twice"
            found[key] = s.value
    return found


def published(topic: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return "usage_detector_records_published_total", (("topic", topic),)


@pytest.fixture
def two() -> tuple[Metrics, Metrics]:
    child = Metrics()  # first: its creation timestamps are the earlier ones
    parent = Metrics()
    return parent, child


def test_counters_are_summed_and_samples_of_one_process_kept(two: tuple[Metrics, Metrics]) -> None:
    parent, child = two
    child.published.labels("usage.state").inc(3)
    parent.published.labels("refund.eligibility").inc(2)
    child.published.labels("dead.letters").inc(4)
    parent.published.labels("dead.letters").inc(5)
    child.consumed.labels("hits").inc()
    merged = values(merged_exposition(parent.registry, generate_latest(child.registry).decode()))
    assert merged[published("usage.state")] == 3
    assert merged[published("refund.eligibility")] == 2
    assert merged[published("dead.letters")] == 9
    assert merged["usage_detector_records_consumed_total", (("topic", "hits"),)] == 1


def test_histograms_are_summed_bucket_by_bucket(two: tuple[Metrics, Metrics]) -> None:
    parent, child = two
    child.usage_start_lag.observe(0.3)
    child.usage_start_lag.observe(7)
    child.publish_latency.observe(0.004)
    parent.publish_latency.observe(0.004)
    parent.publish_latency.observe(100)
    merged = values(merged_exposition(parent.registry, generate_latest(child.registry).decode()))
    assert merged[f"{LAG}_bucket", (("le", "0.25"),)] == 0
    assert merged[f"{LAG}_bucket", (("le", "0.5"),)] == 1
    assert merged[f"{LAG}_bucket", (("le", "10.0"),)] == 2
    assert merged[f"{LAG}_bucket", (("le", "+Inf"),)] == 2
    assert merged[f"{LAG}_count", ()] == 2
    assert merged[f"{LAG}_sum", ()] == pytest.approx(7.3)
    assert merged[f"{LATENCY}_bucket", (("le", "0.005"),)] == 2
    assert merged[f"{LATENCY}_bucket", (("le", "300.0"),)] == 3
    assert merged[f"{LATENCY}_count", ()] == 3
    assert merged[f"{LATENCY}_sum", ()] == pytest.approx(100.008)


def test_gauges_keep_the_parents_value(two: tuple[Metrics, Metrics]) -> None:
    parent, child = two
    parent.ready.set(0)
    child.ready.set(1)
    merged = values(merged_exposition(parent.registry, generate_latest(child.registry).decode()))
    assert merged["usage_detector_ready", ()] == 0


def test_creation_timestamps_keep_the_earlier(two: tuple[Metrics, Metrics]) -> None:
    parent, child = two
    name = "usage_detector_evidence_dropped_created"
    earlier, later = (
        values(generate_latest(child.registry))[name, ()],
        values(generate_latest(parent.registry))[name, ()],
    )
    assert earlier < later
    merged = values(merged_exposition(parent.registry, generate_latest(child.registry).decode()))
    assert merged[name, ()] == earlier
    assert merged[f"{LAG}_created", ()] == values(generate_latest(child.registry))[f"{LAG}_created", ()]


def test_families_of_the_child_alone_come_after_the_parents(two: tuple[Metrics, Metrics]) -> None:
    parent, child = two
    Counter("usage_detector_child_only", "Only the usage process has it", registry=child.registry).inc(6)
    merged = merged_exposition(parent.registry, generate_latest(child.registry).decode())
    names = [family.name for family in text_string_to_metric_families(merged.decode())]
    assert names[-2:] == ["usage_detector_child_only", "usage_detector_child_only_created"]
    assert names[:-2] == [
        family.name for family in text_string_to_metric_families(generate_latest(parent.registry).decode())
    ]
    assert values(merged)["usage_detector_child_only_total", ()] == 6


def test_each_family_has_one_help_and_one_type_line(two: tuple[Metrics, Metrics]) -> None:
    parent, child = two
    for metrics in (parent, child):
        metrics.published.labels("usage.state").inc()
        metrics.usage_start_lag.observe(1)
    lines = merged_exposition(parent.registry, generate_latest(child.registry).decode()).decode().splitlines()
    for kind in ("# HELP ", "# TYPE "):
        declared = Tally(line.split()[2] for line in lines if line.startswith(kind))
        assert declared, kind
        assert max(declared.values()) == 1, declared


def test_without_the_child_it_is_the_parents_exposition(two: tuple[Metrics, Metrics]) -> None:
    parent, _ = two
    parent.published.labels("refund.eligibility").inc(2)
    assert merged_exposition(parent.registry, "") == generate_latest(parent.registry)


def test_an_unreadable_child_leaves_the_parents_exposition(
    two: tuple[Metrics, Metrics], caplog: pytest.LogCaptureFixture
) -> None:
    parent, _ = two
    parent.published.labels("refund.eligibility").inc(2)
    with caplog.at_level(logging.WARNING, logger="streams.merged_metrics"):
        assert merged_exposition(parent.registry, "<html>502 Bad Gateway</html>") == generate_latest(parent.registry)
        assert merged_exposition(parent.registry, "usage_detector_ready{ 1") == generate_latest(parent.registry)
    assert len(caplog.records) == 2
