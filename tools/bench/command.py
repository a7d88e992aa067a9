"""`usage-detector bench`: the detector measured side by side with a raw Kafka consumer.

One run, one broker, fresh topics and app ids (`bench-<tag>...`, deleted at the end):

1. baseline   a raw aiokafka consumer reads the pre-filled input topics from the start and
              decodes every value with orjson (records/s);
2. detector   a `usage-detector worker` subprocess processes the same topics from the start
              until caught up (its consumer groups' committed offsets reach the end offsets of
              the inputs and of its internal topics); records/s and the ratio 2/1;
3. lag        the same worker, fed hits at a steady half of its steady rate in 2, among them
              the first hits of new accounts (--lag-starts a second): usage-start lag from the input
              record's timestamp to its `usage.state` record's, both LogAppendTime (the
              broker's clock);
4. scale      per account count (10k, 100k, 1M): a fresh worker learns every account until
              caught up, is stopped, the steady hits over those accounts are produced, the raw
              consumer of stage 1 reads the same hits topic, and the worker restarted on its
              state reads them: steady-state hits/s, the ratio to the raw consumer, CPU µs a
              hit, and its RSS (every point's steady hits hold as many usage starts: the
              smallest point's);
5. restart    the largest scale worker is stopped, more records arrive, a new worker starts
              on the same state: time to healthy and to caught up;
6. lookup     two workers share fresh accounts; GET /accounts/{id} through the first, of
              accounts it holds (local) and of the other's (routed, by Faust's table
              routing), at a fixed rate and at the maximum, idle and under a firehose of
              hits: p50/p95/p99/max latency and requests/s of each;
7. share      two workers on fresh topics, then the hits: each one's share of the firehose
              (hits its firehose stage read) and the total records/s;
8. storm      1,000 trials sharing one device id on a worker of its own, in trial order, then
              latest first: time until every account's latest eligibility record is right (as
              the oracle computes it) and records per account; usage-start lag of unrelated
              new accounts during a storm and on a quiet worker; the accounts table's stored
              state of one account after each of 1,000 billing events;
9. agents     every account's first hit and billing events (work for the Faust agents, not
              dropped by the firehose) on a fresh worker per USAGE_DETECTOR_STREAM_BUFFER_RECORDS
              value compared: records/s and CPU a record of each.

Prints a table, writes JSON (with the machine and the settings) and a PNG of the scale curve
(matplotlib, from the `bench` extra) under bench/results/.
"""

from __future__ import annotations

import argparse
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from tools.bench import report
from tools.bench.lookup import LookupPlan
from tools.bench.options import AgentsPlan, Options
from tools.bench.stages import DEFAULT_SCALE, STAGES, Bench
from tools.bench.storm import StormPlan


def count(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if factor > 1 else text) * factor)


def register(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser(
        "bench",
        help="measure the detector side by side with a raw Kafka consumer (throughput, lag, scale, restart) and its lookups",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument("--hits", type=count, default=None, help="hits in the throughput topic (default 1M; 5k with --tiny)")
    bench.add_argument("--accounts", type=count, default=None, help="accounts in the throughput topic (default 50k)")
    bench.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, of: {', '.join(STAGES)} (default: all)")
    bench.add_argument("--scale-accounts", default=None, help="account counts of the scale stage (default 10k,100k,1M)")
    bench.add_argument("--scale-hits", type=count, default=None, help="steady hits per scale point (default 500k)")
    bench.add_argument(
        "--scale-trial-share",
        type=float,
        default=0.1,
        help="share of trial accounts in the scale stage (each costs ~10 internal events: claims, verdicts; default 0.1)",
    )
    bench.add_argument("--lag-seconds", type=float, default=None, help="how long the lag stage produces (default 30)")
    bench.add_argument("--lag-starts", type=float, default=50.0,
                       help="usage starts per second among the lag stage's hits (first hits of new accounts; default 50)")
    bench.add_argument("--restart-hits", type=count, default=None, help="hits that arrive while the worker is down (default 50k)")
    bench.add_argument("--lookup-accounts", type=count, default=None, help="accounts of the lookup stage (default 2k; 200 with --tiny)")
    bench.add_argument("--lookup-rate", type=float, default=None, help="lookups/s of its fixed-rate runs (default 500; 100 with --tiny)")
    bench.add_argument("--lookup-seconds", type=float, default=None, help="length of each fixed-rate run (default 10; 2 with --tiny)")
    bench.add_argument("--lookup-requests", type=count, default=None, help="requests of each run at the maximum (default 4k; 200 with --tiny)")
    bench.add_argument("--lookup-concurrency", type=int, default=16, help="requests in flight in a run at the maximum (default 16)")
    bench.add_argument(
        "--lookup-load", type=float, default=None, help="hits/s of the firehose under the loaded lookups (default 4k; 300 with --tiny)"
    )
    bench.add_argument("--storm-accounts", type=count, default=None, help="trials sharing one device id per storm (default 1k; 100 with --tiny)")
    bench.add_argument("--storm-lag-rate", type=float, default=None, help="hits/s while the storm stage measures lag (default 500; 100 with --tiny)")
    bench.add_argument("--agents-accounts", type=count, default=None,
                       help="accounts of the agents stage: each one's first hit and billing events (default 20k; 300 with --tiny)")
    bench.add_argument("--agents-stream-buffers", default="1024,4096,16384",
                       help="USAGE_DETECTOR_STREAM_BUFFER_RECORDS values the agents stage compares (default 1024,4096,16384)")
    bench.add_argument("--partitions", type=int, default=8, help="USAGE_DETECTOR_PARTITIONS of the workers (default 8)")
    bench.add_argument("--out", type=Path, default=Path("bench/results"), help="where JSON and PNG go (default bench/results)")
    bench.add_argument("--label", default=None, help="name of this run in file names (default bench-<time>)")
    bench.add_argument("--timeout", type=float, default=1800.0, help="longest wait for a worker to catch up, seconds")
    bench.add_argument("--keep-topics", action="store_true", help="leave the bench's topics on the broker")
    bench.add_argument("--max-rss", type=float, default=8.0, help="GiB: a worker over this is stopped, its stage reported as aborted (0: no limit)")
    bench.add_argument("--profile", action="store_true", help="py-spy the worker in stage 2 and in the steady part of each scale point (needs py-spy)")
    bench.add_argument("--tiny", action="store_true", help="a quick smoke run: small sizes everywhere (seconds, not minutes)")
    bench.set_defaults(run=run_bench)


def options_from(args: argparse.Namespace) -> Options:
    from models.errors import ConfigurationError

    tiny = args.tiny
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise ConfigurationError(f"--stages: unknown {', '.join(unknown) or '(none)'}; choose from {', '.join(STAGES)}")
    if "restart" in stages and "scale" not in stages:
        raise ConfigurationError("--stages: restart runs on the largest scale point; add scale")
    scale = tuple(count(s) for s in args.scale_accounts.split(",")) if args.scale_accounts else None
    label = args.label or f"bench-{datetime.now():%Y%m%d-%H%M%S}"
    return Options(
        hits=args.hits or (5_000 if tiny else 1_000_000),
        accounts=args.accounts or (500 if tiny else 50_000),
        stages=stages,
        scale_accounts=scale or ((500, 1_000) if tiny else DEFAULT_SCALE),
        scale_hits=args.scale_hits or (3_000 if tiny else 500_000),
        lag_seconds=args.lag_seconds or (3.0 if tiny else 30.0),
        lag_starts_per_s=args.lag_starts,
        restart_hits=args.restart_hits or (500 if tiny else 50_000),
        partitions=args.partitions,
        out=args.out,
        label=label,
        keep_topics=args.keep_topics,
        profile=args.profile,
        tiny=tiny,
        timeout=args.timeout,
        lookup=LookupPlan(
            accounts=args.lookup_accounts or (200 if tiny else 2_000),
            rate=args.lookup_rate or (100.0 if tiny else 500.0),
            seconds=args.lookup_seconds or (2.0 if tiny else 10.0),
            requests=args.lookup_requests or (200 if tiny else 4_000),
            concurrency=args.lookup_concurrency,
            load_hits_per_s=args.lookup_load or (300.0 if tiny else 4_000.0),
        ),
        storm=StormPlan(
            accounts=args.storm_accounts or (100 if tiny else 1_000),
            billing_events=100 if tiny else 1_000,
            lag_hits_per_s=args.storm_lag_rate or (100.0 if tiny else 500.0),
            background_accounts=200 if tiny else 2_000,
            settle_timeout_s=600.0,
        ),
        agents=AgentsPlan(
            accounts=args.agents_accounts or (300 if tiny else 20_000),
            stream_buffers=tuple(count(s) for s in args.agents_stream_buffers.split(",")),
        ),
        max_rss=int(args.max_rss * 2**30),
        scale_trial_share=args.scale_trial_share,
    )


def run_bench(args: argparse.Namespace) -> int:
    from tools.options import bootstrap_servers, settings_from

    o = options_from(args)
    servers = bootstrap_servers(settings_from(argparse.Namespace()))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("[bench] matplotlib is missing: the PNG will be skipped; install it with pip install -e '.[bench]'", file=sys.stderr)
    print(f"[bench] broker {servers}; stages {', '.join(o.stages)}; results in {o.out}/{o.label}.*", file=sys.stderr)
    signal.signal(signal.SIGTERM, _interrupt)  # stop workers and delete topics on the way out
    bench = Bench(o, servers)
    results = bench.run()
    print(report.table(results))
    print(f"wrote {bench.json_path}")
    print(report.plot(results, o.out / f"{o.label}-scale.png"))
    if "error" in results:
        print(f"usage-detector bench: {results['error']}", file=sys.stderr)
        return 1
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
