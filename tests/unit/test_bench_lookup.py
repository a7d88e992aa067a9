"""The lookup stage's pure parts: how latencies are summarised and accounts split by owner."""

import argparse
from collections import Counter

from tools.bench.command import options_from, register
from tools.bench.lookup import split_by_owner, summarise
from tools.bench.report import table


def test_a_summary_gives_quantiles_in_ms_the_rate_of_answers_and_failures_by_kind() -> None:
    latencies = [n / 1000 for n in range(1, 101)]  # 1..100 ms, out of order below
    summary = summarise(list(reversed(latencies)), seconds=2.0, failures=Counter({"503": 2, "ClientOSError": 1}))
    assert summary["requests"] == 103 and summary["failed"] == {"503": 2, "ClientOSError": 1}
    assert summary["requests_per_s"] == 50.0  # answered ones only
    assert (summary["p50_ms"], summary["p95_ms"], summary["p99_ms"], summary["max_ms"]) == (51.0, 96.0, 100.0, 100.0)
    assert round(summary["mean_ms"], 6) == 50.5
    assert "p99_ms" not in summarise([], 1.0, Counter({"401": 3}))  # nothing answered: no quantile to make up


def test_accounts_split_by_the_worker_faust_routes_them_to() -> None:
    owners = {"a": "http://127.0.0.1:6066", "b": "http://127.0.0.1:6067/", "c": "http://127.0.0.1:6066/"}
    assert split_by_owner(owners, "http://127.0.0.1:6066") == (["a", "c"], ["b"])


def test_tiny_sizes_and_the_table_row_of_each_case() -> None:
    commands = argparse.ArgumentParser().add_subparsers()
    register(commands)
    plan = options_from(commands.choices["bench"].parse_args(["--tiny", "--stages", "lookup"])).lookup
    assert (plan.accounts, plan.rate, plan.requests, plan.concurrency) == (200, 100.0, 200, 16)
    case = {"requests_per_s": 99.0, "p50_ms": 2.0, "p95_ms": 5.0, "p99_ms": 9.0, "max_ms": 12.0, "concurrency": 16, "worker_cpu_us_per_lookup": [300.0, 9.0]}
    kinds = {"local": {"at_rate": case, "at_max": case}, "routed": {"at_rate": case, "at_max": case}}
    results = {"label": "t", "machine": {"cpu": "cpu", "cores": 2}, "lookup": {"idle": kinds, "firehose": kinds, "console_page": kinds}}
    lines = table(results).splitlines()
    assert len([line for line in lines if line.startswith("6 lookup")]) == 4
    assert any(line.startswith("6 console page local, idle") and "p95 5.0" in line for line in lines)
    assert any(line.startswith("6 lookup routed, firehose") and "p99 9.0" in line and "CPU 309 µs" in line for line in lines)
