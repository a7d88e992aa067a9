"""The live terminal view (rich), redrawn from the demo's own loop."""

from __future__ import annotations

import time
from bisect import bisect_right
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live

from models.timestamps import parse_timestamp
from tools.demo.console import clock
from tools.demo.view import (
    LIVE_REFRESH_S,
    RECENT_CHANGES,
    Change,
    Latency,
    RateMeter,
    ViewState,
    changes_that_fit,
    histogram_buckets,
    render,
)
from tools.demo.watch import OutputWatcher, Publisher, describe, what_else_changed
from tools.supervisor import HTTP, WorkerProcess
from tools.traffic import Traffic

METRICS_SCRAPE_S = 1.0  # and reads the worker's /metrics once per second


class LiveDemo:
    """The live terminal view (rich): gathers what the demo sent and read back, and the worker's
    /metrics, into a `ViewState` and redraws it a few times per second from the demo's own loop."""

    def __init__(
        self, title: str, traffic: Traffic, worker: WorkerProcess, watcher: OutputWatcher, publisher: Publisher
    ) -> None:
        self.title = title
        self.phase = "starting"
        self.traffic = traffic
        self.worker = worker
        self.watcher = watcher
        self.publisher = publisher
        self.started = time.monotonic()
        self.sent_rate = RateMeter()
        self.output_rate = RateMeter()
        self.pipeline_s: deque[float] = deque(maxlen=5000)
        self.changes: deque[Change] = deque(maxlen=RECENT_CHANGES)
        self.metrics_text = ""
        self.metrics_note = "waiting for the worker's /metrics"
        self.console = Console()
        self.live = Live(console=self.console, auto_refresh=False, redirect_stdout=True, redirect_stderr=True)
        self._drawn_at = 0.0
        self._scraped_at = 0.0
        watcher.echo = lambda _text: None
        watcher.view = self

    @contextmanager
    def showing(self) -> Iterator[LiveDemo]:
        with self.live:
            self.tick(force=True)
            try:
                yield self
            finally:
                self.scrape()
                self.tick(force=True)

    def saw_output(self, account: str, stamped_at: str | int) -> None:
        """Produce -> read back, for a new output record: from the account's latest input handed to
        the producer before the worker stamped the record (its decided_at / detected_at)."""
        sent = self.publisher.sent_at_ms.get(account, [])
        index = bisect_right(sent, parse_timestamp(stamped_at) + 1) - 1
        if index >= 0:
            self.pipeline_s.append(max(0.0, time.time() - sent[index] / 1000))

    def saw_eligibility(self, previous: dict[str, Any] | None, record: dict[str, Any]) -> None:
        self.saw_output(record["account_id"], record["decided_at"])
        reasons = ", ".join(record["reasons"])
        if previous is not None and describe(previous) == describe(record):
            reasons = f"{reasons}  {what_else_changed(previous, record).strip()}".strip()
        before = previous["state"] if previous is not None else "(new)"
        account, version = record["account_id"], record["version"]
        self.changes.appendleft(Change(clock(), account, before, record["state"], reasons, version))

    def scrape(self) -> None:
        self._scraped_at = time.monotonic()
        try:
            self.metrics_text = HTTP.get(f"{self.worker.url}/metrics", timeout=0.5).raise_for_status().text
            self.metrics_note = ""
        except httpx.HTTPError as error:
            self.metrics_note = f"the worker's /metrics could not be read ({error}); showing the last scrape"

    def state(self) -> ViewState:
        now = time.monotonic()
        outputs = self.watcher.outputs
        output_total = sum(outputs.consumed.values())
        self.sent_rate.add(now, self.publisher.sent)
        self.output_rate.add(now, output_total)
        decided = [outputs.eligibility[a]["state"] for a in self.traffic.account_ids if a in outputs.eligibility]
        state = ViewState(
            title=self.title,
            phase=self.phase,
            elapsed_s=now - self.started,
            sent_total=self.publisher.sent,
            sent_planned=len(self.traffic.sends),
            sent_per_s=self.sent_rate.rate(),
            output_total=output_total,
            output_per_s=self.output_rate.rate(),
            latencies=[
                Latency.from_samples(
                    "end to end", "demo", list(self.pipeline_s), note="input sent -> its output read back"
                ),
                Latency.from_buckets(
                    "decision publish",
                    "worker",
                    histogram_buckets(self.metrics_text, "usage_detector_decision_publish_latency_seconds"),
                    note="account event -> its records sent",
                ),
                Latency.from_buckets(
                    "usage-start lag",
                    "worker",
                    histogram_buckets(self.metrics_text, "usage_detector_usage_start_lag_seconds"),
                    note="now - usage start (simulated Mar 2026): huge",
                ),
            ],
            accounts_total=len(self.traffic.account_ids),
            states=dict(Counter(decided)),
            dead_letters=dict(outputs.dead_letters),
            changes=list(self.changes),
            metrics_note=self.metrics_note,
        )
        if self.console.is_terminal:  # a pipe (`--live | tee`) gets the final view once, all of it
            width, height = self.console.size
            state.changes_shown = changes_that_fit(state, width, height)
        return state

    def tick(self, force: bool = False) -> None:
        """Redraws when due (and re-reads /metrics when that is due); cheap to call often."""
        now = time.monotonic()
        if not force and now - self._drawn_at < LIVE_REFRESH_S:
            return
        if now - self._scraped_at >= METRICS_SCRAPE_S:
            self.scrape()
        self._drawn_at = now
        self.live.update(render(self.state()), refresh=True)
