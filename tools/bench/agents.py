"""Stage 9, agents: the Faust agents that remain behind the firehose, at each stream buffer size.

Every account's first hit and its billing events: what the firehose forwards and route-inputs
reads, so every record is work for the agents (route-inputs, process-accounts, judge-signals).
For each candidate `USAGE_DETECTOR_STREAM_BUFFER_RECORDS` (Faust's `stream_buffer_maxsize`), a
fresh worker on fresh topics catches up from the first record; the records/s and CPU per record
of each candidate, measured in one run, set the setting's default.
"""

from __future__ import annotations

from typing import Any

from tools.bench.catch_up import measure_catch_up
from tools.bench.kafka_io import GroupWatch, create_topics, fresh_topics
from tools.bench.progress import human
from tools.bench.stage_host import HEALTH_TIMEOUT_S, Bench
from tools.bench.workload import Workload
from tools.workerpool import delete_topics


def agents_stage(bench: Bench) -> dict[str, Any]:
    o, plan = bench.o, bench.o.agents
    bench.progress.done(f"agents: generating {human(plan.accounts)} accounts' first hits and billing events")
    workload = Workload(accounts=plan.accounts, hits=0, seed=51, warm=True).build()
    rows = []
    for run, size in enumerate(plan.stream_buffers, 1):  # a size may come twice: a repeat, on topics of its own
        what = f"agents, stream buffer {size}"
        topics = fresh_topics(bench.tag, f"ag{run}")
        create_topics(bench.servers, topics, o.partitions)
        bench.prefill(topics, what, workload.hit_records, workload.billing)
        worker = bench.worker(topics, bench.workdir / f"agents-{run}-state", {"USAGE_DETECTOR_STREAM_BUFFER_RECORDS": str(size)})
        worker.wait_ready(HEALTH_TIMEOUT_S, poll_s=0.05)
        watch = GroupWatch(bench.servers, topics)
        caught = measure_catch_up(watch, worker, bench.progress, what, o.timeout, max_rss=o.max_rss)
        watch.close()
        worker.stop()
        if not o.keep_topics:
            delete_topics(bench.servers, topics.owns)
        row = {
            "stream_buffer_records": size,
            "records": workload.total,
            "seconds": caught.seconds,
            "records_per_s": workload.total / caught.seconds,
            "cpu_us_per_record": caught.cpu[-1] / workload.total * 1e6,
            "cpu_share": caught.cpu[-1] / caught.seconds,
        }
        rows.append(row)
        bench.progress.done(
            f"{what}: {human(row['records_per_s'])} records/s, {row['cpu_us_per_record']:.0f} µs CPU a record, "
            f"{row['cpu_share']:.0%} of a core"
        )
    return {"accounts": plan.accounts, "hits": len(workload.hit_records), "billing_events": len(workload.billing), "runs": rows}
