"""The demo's live view: quantiles from /metrics histograms, rates, and what the view shows."""

from __future__ import annotations

import io
import math

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from rich.console import Console

from streams.metrics import LAG_BUCKETS
from tools.demo.view import (
    Change,
    Latency,
    RateMeter,
    ViewState,
    changes_that_fit,
    format_seconds,
    histogram_buckets,
    quantile,
    render,
    sample_quantile,
)

INF = math.inf


def text_of(state: ViewState, width: int = 140) -> str:
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    console.print(render(state))
    return console.export_text()


def test_quantile_interpolates_linearly_inside_the_bucket_holding_the_rank() -> None:
    buckets = [(0.1, 50.0), (0.2, 90.0), (1.0, 100.0), (INF, 100.0)]
    assert quantile(buckets, 0.5) == pytest.approx(0.1)  # the rank at a bucket's upper bound
    assert quantile(buckets, 0.25) == pytest.approx(0.05)  # the first bucket starts at 0
    assert quantile(buckets, 0.7) == pytest.approx(0.15)  # halfway through 50..90
    assert quantile(buckets, 0.95) == pytest.approx(0.6)  # halfway through 90..100


def test_quantile_is_none_without_observations_and_inf_above_every_bound() -> None:
    assert quantile([], 0.5) is None
    assert quantile([(1.0, 0.0), (INF, 0.0)], 0.5) is None
    assert quantile([(300.0, 1.0), (INF, 10.0)], 0.5) == INF
    assert quantile([(300.0, 1.0), (INF, 10.0)], 0.05) == pytest.approx(150.0)


def test_histogram_buckets_read_a_real_exposition_and_sum_over_labels() -> None:
    registry = CollectorRegistry()
    lag = Histogram("usage_detector_usage_start_lag_seconds", "lag", buckets=LAG_BUCKETS, registry=registry)
    other = Histogram("other_seconds", "by topic", ["topic"], buckets=(1.0,), registry=registry)
    for seconds in (0.004, 0.004, 0.03, 400.0):
        lag.observe(seconds)
    other.labels("a").observe(0.5)
    other.labels("b").observe(2.0)
    text = generate_latest(registry).decode()

    buckets = histogram_buckets(text, "usage_detector_usage_start_lag_seconds")
    assert [bound for bound, _ in buckets] == [*LAG_BUCKETS, INF]
    assert dict(buckets)[0.005] == 2 and dict(buckets)[0.05] == 3 and dict(buckets)[INF] == 4
    assert quantile(buckets, 0.5) == pytest.approx(0.005)
    assert quantile(buckets, 0.99) == INF
    assert histogram_buckets(text, "other_seconds") == [(1.0, 1.0), (INF, 2.0)]
    assert histogram_buckets(text, "missing_seconds") == []
    assert histogram_buckets("", "usage_detector_usage_start_lag_seconds") == []


def test_sample_quantile_takes_the_nearest_rank() -> None:
    samples = [float(n) for n in range(1, 101)]
    assert sample_quantile(samples, 0.5) == 50.0
    assert sample_quantile(samples, 0.99) == 99.0
    assert sample_quantile([3.0], 0.95) == 3.0
    assert sample_quantile([], 0.5) is None


def test_latency_from_buckets_keeps_the_ceiling_for_values_above_it() -> None:
    latency = Latency.from_buckets("usage-start lag", "worker", [(60.0, 0.0), (300.0, 0.0), (INF, 7.0)])
    assert (latency.p50, latency.count, latency.ceiling) == (INF, 7, 300.0)
    assert format_seconds(latency.p99, latency.ceiling) == "> 5 min"
    assert [format_seconds(s) for s in (None, 0.0042, 0.25, 3.25, 600.0, 86_400.0)] == [
        "-", "4.2 ms", "250 ms", "3.2 s", "10 min", "24 h",
    ]


def test_rate_meter_counts_per_second_over_its_window() -> None:
    meter = RateMeter(window_s=2.0)
    assert meter.rate() == 0.0
    meter.add(10.0, 0)
    meter.add(11.0, 50)
    assert meter.rate() == pytest.approx(50.0)
    meter.add(12.0, 150)
    meter.add(13.0, 150)  # the reading at 10.0 has left the window
    assert meter.rate() == pytest.approx(50.0)
    meter.add(20.0, 150)
    assert meter.rate() == 0.0


def in_order(line: str, cells: tuple[str, ...]) -> bool:
    at = 0
    for cell in cells:
        found = line.find(cell, at)
        if found < 0:
            return False
        at = found + len(cell)
    return True


def demo_state(**changes: object) -> ViewState:
    state = ViewState(
        title="usage-detector demo demo-1234",
        phase="simulated day 3: Tue 2026-03-03",
        elapsed_s=12.0,
        sent_total=420,
        sent_planned=1343,
        sent_per_s=65.0,
        output_total=118,
        output_per_s=14.0,
        latencies=[
            Latency.from_samples("end to end", "demo", [0.02, 0.03, 0.2], note="input sent -> its output read back"),
            Latency.from_buckets("decision publish", "worker", [(0.01, 4.0), (0.1, 10.0), (INF, 10.0)]),
            Latency.from_buckets("usage-start lag", "worker", [(300.0, 0.0), (INF, 9.0)], note="simulated, so huge"),
        ],
        accounts_total=30,
        states={"eligible": 8, "discretionary": 5},
        dead_letters={"not_json": 1, "unknown_type": 2},
        changes=[
            Change("11:10:59", f"acct-{n:03}", "eligible", "discretionary", "trial_charge_used", n)
            for n in range(20, 0, -1)
        ],
    )
    for name, value in changes.items():
        setattr(state, name, value)
    return state


def test_the_view_shows_rates_latencies_states_dead_letters_and_the_latest_changes() -> None:
    text = text_of(demo_state())
    lines = text.splitlines()

    def row(*cells: str) -> bool:
        """Some line holds these cells in this order."""
        return any(in_order(line, cells) for line in lines)

    assert "usage-detector demo demo-1234" in lines[0] and "simulated day 3" in lines[0]
    assert row("input sent", "65", "420 of 1,343")
    assert row("output read", "14", "118")
    assert row("end to end", "30 ms", "200 ms", "200 ms", "3", "demo: input sent -> its output read back")
    assert row("decision publish", "25 ms", "92 ms", "99 ms", "10", "worker")
    assert row("usage-start lag", "> 5 min", "> 5 min", "> 5 min", "9", "worker: simulated, so huge")
    assert row("discretionary", "5", "not_json", "1")
    assert row("eligible", "8", "unknown_type", "2")
    assert row("undecided", "17")
    # The 12 newest changes, newest first; older ones are left out.
    assert row("11:10:59", "acct-020", "eligible -> discretionary", "trial_charge_used", "v20")
    assert row("acct-009", "v9")
    assert "acct-008" not in text
    assert text.index("acct-020") < text.index("acct-009")


def test_the_view_shows_markup_like_text_as_it_is_and_no_dead_letters_yet() -> None:
    reasons = "trial_charge_used  [usage_started_at: 2026-03-04]"
    change = Change("11:11:00", "acct-[x]", "discretionary", "discretionary", reasons, 4)
    note = "the worker's /metrics could not be read"
    text = text_of(demo_state(changes=[change], dead_letters={}, metrics_note=note))
    assert "acct-[x]" in text and "[usage_started_at: 2026-03-04]" in text
    assert "none yet" in text
    assert "the worker's /metrics could not be read" in text


def test_the_changes_shown_shrink_to_fit_a_small_terminal() -> None:
    state = demo_state()
    assert changes_that_fit(state, 140, 60) == 12
    small = changes_that_fit(state, 140, 24)
    assert 3 <= small < 12
    state.changes_shown = small
    console = Console(file=io.StringIO(), width=140, color_system=None)
    assert len(console.render_lines(render(state), pad=False)) == 24 - 1
    assert changes_that_fit(state, 140, 10) == 3
