"""A worker catching up on what it was given, sampled until its group has committed everything."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tools.bench.kafka_io import GroupWatch
from tools.bench.progress import Progress, human
from tools.supervisor import WorkerProcess

POLL_S = 0.25


class BenchFailed(Exception):
    pass


class RssLimit(BenchFailed):
    def __init__(self, message: str, rss: int, committed: int) -> None:
        super().__init__(message)
        self.rss = rss
        self.committed = committed


@dataclass
class CatchUp:
    seconds: float
    samples: list[tuple[float, int]]  # (seconds since start, committed input records)
    cpu: list[float]  # the worker's CPU seconds at each sample

    def rate_between(self, low: int, high: int) -> float:
        """Records per second while the committed count went from `low` to `high` (interpolated)."""
        t_low, t_high = self.time_at(low), self.time_at(high)
        return (high - low) / max(t_high - t_low, 1e-6)

    def cpu_per_record_between(self, low: int, high: int) -> float:
        """The worker's CPU microseconds per record while the committed count went from low to high."""
        t_low, t_high = self.time_at(low), self.time_at(high)
        return (self.cpu_at(t_high) - self.cpu_at(t_low)) / max(1, high - low) * 1e6

    def cpu_at(self, t: float) -> float:
        previous = (0.0, 0.0)
        for (ts, _), used in zip(self.samples, self.cpu, strict=True):
            if ts >= t:
                t0, c0 = previous
                return c0 + (used - c0) * (t - t0) / max(ts - t0, 1e-9)
            previous = (ts, used)
        return self.cpu[-1] if self.cpu else 0.0

    def time_at(self, count: int) -> float:
        previous = (0.0, 0)
        for t, n in self.samples:
            if n >= count:
                (t0, n0) = previous
                return t0 + (t - t0) * (count - n0) / max(1, n - n0)
            previous = (t, n)
        return self.samples[-1][0]


def measure_catch_up(
    watch: GroupWatch,
    worker: WorkerProcess,
    progress: Progress,
    what: str,
    timeout: float,
    on_sample: Callable[[int], None] | None = None,
    max_rss: int = 0,
) -> CatchUp:
    """Until the group's committed offsets equal the end offsets of inputs and internal topics.

    Raises RssLimit when the worker's RSS goes over `max_rss` (a shared machine stays usable).
    """
    started = time.monotonic()
    samples: list[tuple[float, int]] = []
    cpu: list[float] = []
    cpu_start = worker.cpu_seconds()
    stable = 0
    while True:
        worker.check_running()
        done_in, end_in, done_internal, end_internal = watch.sample()
        elapsed = time.monotonic() - started
        samples.append((elapsed, done_in))
        cpu.append(worker.cpu_seconds() - cpu_start)
        if on_sample is not None:
            on_sample(done_in)
        rss = worker.memory()
        progress(
            f"{what}: inputs {human(done_in)}/{human(end_in)}, internal {human(done_internal)}/{human(end_internal)},"
            f" {elapsed:.0f}s, RSS {rss / 2**20:.0f} MiB, CPU {cpu[-1] / max(elapsed, 1e-3):.0%}"
        )
        if max_rss and rss > max_rss:
            raise RssLimit(f"{what}: worker RSS {rss / 2**30:.1f} GiB over the limit of {max_rss / 2**30:.1f} GiB", rss, done_in)
        if done_in >= end_in and done_internal >= end_internal:
            stable += 1
            if stable >= 2:
                # The first sample that showed it all done is when it was caught up.
                first_done = next(t for t, n in samples if n >= end_in)
                return CatchUp(seconds=max(first_done, samples[-2][0]), samples=samples, cpu=cpu)
        else:
            stable = 0
        if elapsed > timeout:
            raise BenchFailed(f"{what}: not caught up within {timeout:.0f}s (worker log: {worker.log_path})")
        time.sleep(POLL_S)
