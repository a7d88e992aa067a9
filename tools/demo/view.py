"""The demo's live terminal view: pure functions from a plain `ViewState` to rich renderables.

Nothing here talks to Kafka or the worker; `tools.demo` gathers the numbers (records it sent
and read back, the worker's /metrics) into a `ViewState` a few times per second and renders it.
"""

from __future__ import annotations

import io
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from prometheus_client.parser import text_string_to_metric_families
from rich import box
from rich.columns import Columns
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

QUANTILES = (0.5, 0.95, 0.99)
RECENT_CHANGES = 12
LIVE_REFRESH_S = 0.25  # the live view redraws about four times per second
STATE_STYLES = {
    "eligible": "green",
    "discretionary": "yellow",
    "ineligible": "red",
    "refunded": "blue",
    "no_charge": "dim",
    "(new)": "dim",
}

Buckets = list[tuple[float, float]]  # (upper bound `le`, cumulative count), ascending, ending with +Inf


def histogram_buckets(metrics_text: str, name: str) -> Buckets:
    """The cumulative buckets of histogram `name` in a Prometheus text exposition, summed over labels."""
    totals: dict[float, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != name or family.type != "histogram":
            continue
        for sample in family.samples:
            if sample.name == f"{name}_bucket":
                bound = float(sample.labels["le"])
                totals[bound] = totals.get(bound, 0.0) + sample.value
    return sorted(totals.items())


def quantile(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """Like PromQL's histogram_quantile: linear interpolation inside the bucket holding rank q.

    None without observations; +inf when the rank falls in the +Inf bucket (above every bound).
    """
    if not buckets or not math.isinf(buckets[-1][0]):
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return math.inf
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return math.inf  # counts decreasing: a torn scrape


def sample_quantile(samples: Iterable[float], q: float) -> float | None:
    """The q-quantile of raw samples (nearest rank); None without samples."""
    ordered = sorted(samples)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(frozen=True)
class Latency:
    """One latency row of the view: what was measured, by whom, and its p50/p95/p99."""

    label: str
    source: str
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    count: int = 0
    ceiling: float | None = None  # the histogram's largest finite bound: +inf shows as "> ceiling"
    note: str = ""

    @classmethod
    def from_buckets(cls, label: str, source: str, buckets: Buckets, note: str = "") -> Latency:
        p50, p95, p99 = (quantile(buckets, q) for q in QUANTILES)
        finite = [bound for bound, _ in buckets if not math.isinf(bound)]
        count = int(buckets[-1][1]) if buckets else 0
        return cls(label, source, p50, p95, p99, count, finite[-1] if finite else None, note)

    @classmethod
    def from_samples(cls, label: str, source: str, samples: Sequence[float], note: str = "") -> Latency:
        p50, p95, p99 = (sample_quantile(samples, q) for q in QUANTILES)
        return cls(label, source, p50, p95, p99, len(samples), None, note)


def format_seconds(value: float | None, ceiling: float | None = None) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return f"> {format_seconds(ceiling)}" if ceiling is not None else "inf"
    if value < 1:
        return f"{value * 1000:.0f} ms" if value >= 0.01 else f"{value * 1000:.1f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.0f} h"


class RateMeter:
    """Records per second over the last `window_s` seconds, from (time, running total) readings."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._readings: deque[tuple[float, int]] = deque()

    def add(self, at: float, total: int) -> None:
        self._readings.append((at, total))
        while len(self._readings) > 2 and at - self._readings[1][0] >= self.window_s:
            self._readings.popleft()

    def rate(self) -> float:
        if len(self._readings) < 2:
            return 0.0
        (first_at, first_total), (last_at, last_total) = self._readings[0], self._readings[-1]
        return (last_total - first_total) / (last_at - first_at) if last_at > first_at else 0.0


@dataclass(frozen=True)
class Change:
    """One eligibility change as the demo read it from refund.eligibility."""

    at: str  # wall clock, HH:MM:SS
    account: str
    before: str  # the previous state, "(new)" for the account's first decision
    after: str
    reasons: str
    version: int


@dataclass
class ViewState:
    """Everything the view shows, as plain values."""

    title: str
    phase: str = ""
    elapsed_s: float = 0.0
    sent_total: int = 0
    sent_planned: int = 0
    sent_per_s: float = 0.0
    output_total: int = 0
    output_per_s: float = 0.0
    latencies: list[Latency] = field(default_factory=list)
    accounts_total: int = 0
    states: dict[str, int] = field(default_factory=dict)  # accounts per eligibility state
    dead_letters: dict[str, int] = field(default_factory=dict)  # per error code
    changes: list[Change] = field(default_factory=list)  # newest first
    changes_shown: int = RECENT_CHANGES
    metrics_note: str = ""  # e.g. why the worker's /metrics could not be read


def one_line(text: str, style: str = "") -> Text:
    """Text cut short with an ellipsis rather than wrapped, so every row stays one line high
    (the column still gives up width first when the terminal is narrow)."""
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def styled_state(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def _table(title: str, expand: bool = False) -> Table:
    return Table(
        title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, show_edge=False, expand=expand
    )


def traffic_table(state: ViewState) -> Table:
    table = _table("Traffic")
    table.add_column("records")
    table.add_column("per second", justify="right")
    table.add_column("total", justify="right")
    planned = f" of {state.sent_planned:,}" if state.sent_planned else ""
    table.add_row("input sent", f"{state.sent_per_s:,.0f}", f"{state.sent_total:,}{planned}")
    table.add_row("output read", f"{state.output_per_s:,.0f}", f"{state.output_total:,}")
    return table


def latency_table(state: ViewState) -> Table:
    table = _table("Latency", expand=True)
    table.add_column("measure", no_wrap=True)
    for name in ("p50", "p95", "p99"):
        table.add_column(name, justify="right")
    table.add_column("n", justify="right")
    table.add_column("source", style="dim")
    for row in state.latencies:
        cells = (format_seconds(value, row.ceiling) for value in (row.p50, row.p95, row.p99))
        source = f"{row.source}: {row.note}" if row.note else row.source
        table.add_row(Text(row.label), *cells, f"{row.count:,}", one_line(source, style="dim"))
    return table


def states_table(state: ViewState) -> Table:
    table = _table("Accounts")
    table.add_column("eligibility")
    table.add_column("accounts", justify="right")
    for name, count in sorted(state.states.items()):
        table.add_row(styled_state(name), str(count))
    undecided = state.accounts_total - sum(state.states.values())
    if undecided > 0:
        table.add_row(Text("undecided", style="dim"), str(undecided))
    return table


def dead_letters_table(state: ViewState) -> Table:
    table = _table("Dead letters")
    table.add_column("code")
    table.add_column("records", justify="right")
    for code, count in sorted(state.dead_letters.items()):
        table.add_row(Text(code), str(count))
    if not state.dead_letters:
        table.add_row(Text("none yet", style="dim"), "")
    return table


def changes_table(state: ViewState) -> Table:
    table = _table(f"Recent eligibility changes (newest first, up to {state.changes_shown})", expand=True)
    table.add_column("time", no_wrap=True)
    table.add_column("account", no_wrap=True)
    table.add_column("from -> to", no_wrap=True)
    table.add_column("reason")
    table.add_column("version", justify="right")
    for change in state.changes[: state.changes_shown]:
        arrow = styled_state(change.before).append(" -> ", style="").append_text(styled_state(change.after))
        reasons = one_line(change.reasons) if change.reasons else Text("-", style="dim")
        table.add_row(change.at, Text(change.account), arrow, reasons, f"v{change.version}")
    return table


def render(state: ViewState) -> RenderableType:
    """The whole view: header; traffic, accounts and dead letters; latency; recent changes."""
    header = Text(state.title, style="bold")
    header.append(f"   {state.elapsed_s:.0f}s", style="dim")
    if state.phase:
        header.append(f"   {state.phase}", style="cyan")
    counts = Columns([traffic_table(state), states_table(state), dead_letters_table(state)], padding=(0, 4))
    parts: list[RenderableType] = [header, counts, latency_table(state), changes_table(state)]
    if state.metrics_note:
        parts.append(Text(state.metrics_note, style="dim"))
    return Group(*parts)


def changes_that_fit(state: ViewState, width: int, height: int) -> int:
    """How many recent changes fit under the rest of the view in a terminal of this size (3 to 12)."""
    probe = Console(width=width, file=io.StringIO(), color_system=None)
    rest = len(probe.render_lines(render(replace(state, changes=[], changes_shown=0)), pad=False))
    return max(3, min(RECENT_CHANGES, height - rest - 1))
