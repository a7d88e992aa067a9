"""Broker faults for `usage-detector chaos --broker-faults` on a local cluster (`kafka start --brokers 3`).

While records flow, in this order: the broker leading most of the detector's partitions is
SIGKILLed and restarted later; the then busiest one is shut down in a controlled way (SIGTERM:
it hands its leadership over first) and started again; the then busiest one is SIGKILLed and
kept down for a while (the cluster serves with two), then started again.

Around each fault it measures what a reader of the outputs sees, from a tail of them:
`stalled_s`, the longest time after the fault during which no output record was written (the
inputs keep flowing meanwhile), and the usage-start lag (from the evidence record's send to its
usage.state record's arrival at the tail) of evidence sent in the 30 s before and after.
"""

from __future__ import annotations

import bisect
import itertools
import signal
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.errors import KafkaError

from localkafka import cluster
from streams.topics import TopicNames
from tools.outputs import topic_partitions

WINDOW_S = 30.0  # evidence sent this long before and after a fault shows its usage-start lag
STALL_WINDOW_S = 120.0  # a stall is looked for this long after a fault
# (progress at which it happens, fault) in order; "down" keeps the broker down for `down_s`.
SCHEDULE = ((0.25, "sigkill"), (0.40, "restart"), (0.55, "controlled shutdown"), (0.70, "down"))


def leaders(servers: str, topics: list[str]) -> Counter[int]:
    """How many partitions of `topics` each broker leads now."""
    admin = KafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=10_000)
    try:
        return Counter(p["leader_id"] for t in admin.describe_topics(topics) for p in t["partitions"] if p["leader_id"] >= 0)
    finally:
        admin.close()


def percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"count": len(ordered), "p50": at(0.5), "p99": at(0.99), "max": at(1.0), "mean": round(statistics.fmean(ordered), 2)}


def evidence_index(records: list[tuple[str, bytes | None, bytes | None]]) -> dict[str, int]:
    """The index in the workload of each hit and Conversion API event, by its hit_id or event_id."""
    found = {}
    for index, (kind, _, value) in enumerate(records):
        if kind in ("hits", "capi") and value:
            try:
                record = orjson.loads(value)
                found[str(record["hit_id" if kind == "hits" else "event_id"])] = index
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue  # an unusable record: no usage to time
    return found


@dataclass
class OutputTail:
    """Reads the outputs as they are written: when their total grew, and when each usage record arrived."""

    servers: str
    names: TopicNames
    growth: list[tuple[float, int]] = field(default_factory=list)  # (time, records written so far) at each growth
    usage_arrivals: dict[str, float] = field(default_factory=dict)  # evidence id -> first arrival of a record naming it

    def run(self, stop: threading.Event) -> None:
        outputs = [self.names.usage, self.names.eligibility, self.names.dead_letter]
        consumer = KafkaConsumer(bootstrap_servers=self.servers, enable_auto_commit=False, group_id=None,
                                 request_timeout_ms=10_000)
        try:
            partitions = topic_partitions(consumer, outputs)
            usage = [tp for tp in partitions if tp.topic == self.names.usage]
            consumer.assign(usage)
            consumer.seek_to_beginning(*usage)
            last_ends = 0
            while not stop.is_set():
                for records in consumer.poll(timeout_ms=250).values():
                    arrived = time.time()
                    for record in records:
                        evidence = orjson.loads(record.value)["first_evidence"]["id"] if record.value else None
                        if evidence is not None:
                            self.usage_arrivals.setdefault(evidence, arrived)
                try:
                    ends = sum(consumer.end_offsets(partitions).values())
                except (KafkaError, KeyError):  # kafka-python 3.0 raises KeyError for a partition without a leader
                    continue  # a leader away: no growth seen, which is what a stall is
                if ends > last_ends:
                    self.growth.append((time.time(), ends))
                    last_ends = ends
        finally:
            consumer.close()

    def longest_quiet(self, since: float, until: float) -> float:
        """The longest time in [since, until] between two growths of the outputs."""
        moments = [since, *(at for at, _ in self.growth if since < at < until)]
        later = [at for at, _ in self.growth if at >= until]
        moments.append(later[0] if later else until)
        return max(b - a for a, b in itertools.pairwise(moments))


@dataclass
class BrokerFaults:
    home: Path
    servers: str
    names: TopicNames
    progress: Callable[[], float]  # share of the workload produced
    down_s: float
    log: Callable[[str], None]
    faults: list[dict[str, Any]] = field(default_factory=list)
    sends: list[tuple[float, float]] = field(default_factory=list)  # (time, share produced), sampled
    error: Exception | None = None

    def __post_init__(self) -> None:
        info = cluster.cluster_status(self.home)
        if info is None or len(info.running()) < 3:
            raise SystemExit(f"usage-detector chaos: --broker-faults needs a running local cluster of three brokers "
                             f"(`usage-detector kafka start --brokers 3`, home {self.home})")
        self.tail = OutputTail(self.servers, self.names)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self.tail.run, args=(self._stop,), daemon=True),
                         threading.Thread(target=self._sample, daemon=True),
                         threading.Thread(target=self._run_safely, daemon=True)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _topics(self) -> list[str]:
        return [*self.names.inputs, self.names.usage, self.names.eligibility, self.names.dead_letter,
                *self.names.internal, self.names.accounts_changelog, self.names.signals_changelog]

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.sends.append((time.time(), self.progress()))

    def _run_safely(self) -> None:
        try:
            self._run()
        except Exception as error:  # noqa: BLE001 (raised by `finish` in the main thread)
            self.error = error

    def _run(self) -> None:
        killed: int | None = None
        for at, fault in SCHEDULE:
            while self.progress() < at:
                if self._stop.wait(0.5):
                    return
            if fault == "restart" and killed is not None:
                self._fault(fault, killed, lambda node: cluster.start_node(self.home, node))
                continue
            busiest, led = leaders(self.servers, self._topics()).most_common(1)[0]
            if fault == "sigkill":
                killed = busiest
                self._fault(fault, busiest, lambda node: cluster.stop_node(self.home, node, signal.SIGKILL), led)
            elif fault == "controlled shutdown":
                self._fault(fault, busiest, lambda node: cluster.stop_node(self.home, node, signal.SIGTERM), led)
                cluster.start_node(self.home, busiest)
            else:
                self._fault(f"sigkill, down {self.down_s:.0f} s", busiest,
                            lambda node: cluster.stop_node(self.home, node, signal.SIGKILL), led)
                self._stop.wait(self.down_s)
                self._fault("restart", busiest, lambda node: cluster.start_node(self.home, node))

    def _fault(self, kind: str, node: int, act: Callable[[int], object], led: int | None = None) -> None:
        started, share = time.time(), round(self.progress(), 3)
        self.log(f"broker fault: {kind} of node {node}" + (f" (leads {led} of the detector's partitions)" if led else ""))
        act(node)
        self.faults.append({"fault": kind, "node": node, "leader_of": led, "at": started, "took_s": round(time.time() - started, 1),
                            "produced_share": share})

    def finish(self) -> None:
        """Wait for the schedule to end, then start any node still down (call once every record is produced)."""
        self._threads[2].join()
        if self.error is not None:
            raise SystemExit(f"usage-detector chaos: a broker fault failed ({self.error!r}); the run is void") from self.error
        info = cluster.read_cluster(self.home)
        for node in info.nodes if info is not None else ():
            cluster.start_node(self.home, node.node_id)

    def report(self, workload_ids: dict[str, int], total: int) -> list[dict[str, Any]]:
        """Each fault with its stall and the usage-start lag around it. Call once the outputs are complete.

        `workload_ids`: `evidence_index` of the workload; `total`: its records."""
        self._stop.set()
        for thread in self._threads[:2]:
            thread.join()
        times = [at for at, _ in self.sends]
        shares = [share for _, share in self.sends]
        lags: list[tuple[float, float]] = []  # (when the evidence was sent, its usage-start lag)
        for evidence, arrived in self.tail.usage_arrivals.items():
            index = workload_ids.get(evidence)
            if index is None or not times:
                continue
            # The send time of a record: interpolated from the sampled progress of the producer.
            i = bisect.bisect_left(shares, index / total)
            if 0 < i < len(shares):
                (t0, s0), (t1, s1) = (times[i - 1], shares[i - 1]), (times[i], shares[i])
                sent = t0 + (t1 - t0) * ((index / total - s0) / (s1 - s0) if s1 > s0 else 0)
                lags.append((sent, arrived - sent))
        report = []
        for fault in self.faults:
            at = fault["at"]
            report.append({
                **{k: v for k, v in fault.items() if k != "at"},
                "stalled_s": round(self.tail.longest_quiet(at, at + STALL_WINDOW_S), 1),
                "usage_start_lag_s_before": percentiles([lag for sent, lag in lags if at - WINDOW_S <= sent < at]),
                "usage_start_lag_s_after": percentiles([lag for sent, lag in lags if at <= sent < at + WINDOW_S]),
            })
        return report
