"""Stage 7, share: two workers on the same topics split the firehose between them.

Both workers start on fresh, empty topics and join their groups; only then the hits arrive
(every account's first hit, then later ones), so neither has a head start. Each worker's share
is the count of hits its firehose stage read (`usage_detector_records_consumed` on its /metrics).
On a 2-core machine the figure shows the sharing, not a speed-up.
"""

from __future__ import annotations

import time
from typing import Any

from tools.bench.catch_up import measure_catch_up
from tools.bench.kafka_io import GroupWatch, create_topics, fresh_topics
from tools.bench.progress import human
from tools.bench.stage_host import HEALTH_TIMEOUT_S, Bench
from tools.bench.workload import Workload
from tools.workerpool import delete_topics

SETTLE_S = 5.0  # after both are ready: the firehose group's second join settles


def share_stage(bench: Bench) -> dict[str, Any]:
    o = bench.o
    topics = fresh_topics(bench.tag, "sh")
    bench.progress.done(f"share: generating {human(o.hits)} hits over {human(o.accounts)} accounts")
    workload = Workload(accounts=o.accounts, hits=o.hits, seed=31).build()
    create_topics(bench.servers, topics, o.partitions)
    workers = [bench.worker(topics, bench.workdir / f"share-{n}-state") for n in (1, 2)]
    for worker in workers:
        worker.wait_ready(HEALTH_TIMEOUT_S, poll_s=0.05)
    time.sleep(SETTLE_S)
    cpu_before = [worker.cpu_seconds() for worker in workers]
    bench.prefill(topics, "share", workload.hit_records, workload.billing)
    watch = GroupWatch(bench.servers, topics)
    caught = measure_catch_up(watch, workers[0], bench.progress, "share: two workers", o.timeout, max_rss=o.max_rss)
    watch.close()
    read = [worker.metric("usage_detector_records_consumed_total") for worker in workers]
    rate = workload.total / caught.seconds
    each = [
        {"records_read": count, "share": count / max(1, sum(read)), "cpu_s": worker.cpu_seconds() - before}
        for worker, count, before in zip(workers, read, cpu_before, strict=True)
    ]
    for worker in workers:
        worker.stop()
    if not o.keep_topics:
        delete_topics(bench.servers, topics.owns)
    shares = ", ".join(f"{w['share']:.0%}" for w in each)
    bench.progress.done(f"share: {human(rate)} records/s by two workers; shares {shares}")
    # Seconds: from the first records produced (the prefill ran meanwhile) to caught up.
    return {"records": workload.total, "hits": len(workload.hit_records), "seconds": caught.seconds, "records_per_s": rate,
            "workers": each}
