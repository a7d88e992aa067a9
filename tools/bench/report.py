"""What a run prints and records: the machine, the settings, a table, the scale curve."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.bench.progress import human


def quantile(ordered: Sequence[float], q: float) -> float:
    """The value below which a share `q` of the sorted `ordered` lies (nearest rank)."""
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def machine(servers: str) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_bytes": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "kafka_broker": kafka_broker_version(servers),
        "bootstrap_servers": servers,
        "packages": {name: version(name) for name in ("faust-streaming", "aiokafka", "kafka-python", "orjson", "pydantic", "rocksdict")},
    }


def kafka_broker_version(servers: str) -> str:
    try:
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(bootstrap_servers=servers)
        try:
            found = consumer.config.get("api_version") or consumer._client.check_version()
        finally:
            consumer.close()
        api = ".".join(str(part) for part in found) if isinstance(found, tuple) else str(found)
    except Exception as exc:  # noqa: BLE001 - the version is informational
        api = f"unknown ({exc.__class__.__name__})"
    pom = Path(__file__).resolve().parents[2] / "localkafka" / "pom.xml"
    try:
        text = pom.read_text()
        local = text.split("<kafka.version>", 1)[1].split("<", 1)[0]
    except (OSError, IndexError):
        local = "unknown"
    return f"{local} (local broker's jars), api {api}"


def table(results: dict[str, Any]) -> str:
    lines = [f"usage-detector bench ({results['label']}) on {results['machine']['cpu']}, {results['machine']['cores']} cores"]
    rows: list[tuple[str, ...]] = []
    if "baseline" in results:
        b = results["baseline"]
        rows.append(("1 baseline (aiokafka + orjson)", f"{b['records_per_s']:,.0f} records/s", f"{b['records']:,} in {b['seconds']:.1f}s"))
    if "detector" in results:
        d = results["detector"]
        ratio = f"ratio 2/1 = {d['ratio']:.3f}" if "ratio" in d else ""
        rows.append(("2 detector (worker)", f"{d['records_per_s']:,.0f} records/s", f"{ratio}; steady {d['steady_records_per_s']:,.0f}/s"))
    if "lag" in results:
        g = results["lag"]
        rows.append((
            f"3 usage-start lag @ {g['achieved_hits_per_s']:,.0f} hits/s",
            f"p50 {g['p50_ms']:.0f} / p95 {g['p95_ms']:.0f} / p99 {g['p99_ms']:.0f} ms",
            f"{g['samples']} starts, max {g['max_ms']:.0f} ms",
        ))  # fmt: skip
    for row in results.get("scale", []):
        if "aborted" in row:
            rows.append((f"4 scale {human(row['accounts'])} accounts", "aborted", row["aborted"]))
            continue
        rows.append((
            f"4 scale {human(row['accounts'])} accounts",
            f"{row['hits_per_s']:,.0f} hits/s"
            + (f" = {row['ratio']:.2f} of raw, {row['cpu_us_per_hit']:.1f} µs CPU a hit" if "ratio" in row else ""),
            (
                f"RSS {row['rss_bytes'] / 2**20:,.0f} MiB = {row['bytes_per_account']:,.0f} B/account"
                f" (+{row['added_bytes_per_account']:,.0f}); disk {row['state_dir_bytes'] / 2**20:,.0f} MiB"
            ),
        ))  # fmt: skip
    if "restart" in results and "skipped" not in results["restart"]:
        r = results["restart"]
        rows.append((f"5 restart on {human(r['accounts'])} accounts", f"caught up in {r['caught_up_s']:.1f}s", f"healthy in {r['healthy_s']:.1f}s"))
    lookup = results.get("lookup", {})
    for load in ("idle", "firehose", "console_page"):
        for kind in ("local", "routed") if load in lookup else ():
            rate, top = lookup[load][kind]["at_rate"], lookup[load][kind]["at_max"]
            rows.append((
                f"6 lookup {kind}, {load}" if load != "console_page" else f"6 console page {kind}, idle",
                f"@ {rate['requests_per_s']:,.0f}/s p50 {rate['p50_ms']:.1f} / p95 {rate['p95_ms']:.1f} / p99 {rate['p99_ms']:.1f} / max {rate['max_ms']:.0f} ms",
                f"max {top['requests_per_s']:,.0f}/s ({top['concurrency']} in flight): p50 {top['p50_ms']:.1f} / p99 {top['p99_ms']:.1f} ms",
                f"workers' CPU {sum(top['worker_cpu_us_per_lookup']):,.0f} µs a lookup",
            ))  # fmt: skip
    if "share" in results:
        s = results["share"]
        rows.append(("7 share: two workers", f"{s['records_per_s']:,.0f} records/s", "shares " + " / ".join(
            f"{w['share']:.0%} ({w['records_read']:,.0f} read, {w['cpu_s']:.0f} s CPU)" for w in s["workers"])))
    for run in results.get("agents", {}).get("runs", []):
        rows.append((f"9 agents, stream buffer {run['stream_buffer_records']}", f"{run['records_per_s']:,.0f} records/s",
                     f"{run['cpu_us_per_record']:,.0f} µs CPU a record, {run['cpu_share']:.0%} of a core"))
    width = [max(len(row[i]) for row in rows if len(row) > i) for i in range(max(map(len, rows), default=0))]
    for row in rows:
        lines.append("  ".join(cell.ljust(width[i]) for i, cell in enumerate(row)))
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "PNG skipped: matplotlib is not installed (pip install -e '.[bench]' or pip install matplotlib)"
    rows = [row for row in results.get("scale") or [] if "hits_per_s" in row]
    if not rows:
        return "PNG skipped: no scale stage in this run"
    accounts = [row["accounts"] for row in rows]
    fig, left = plt.subplots(figsize=(7, 4.2), dpi=110)
    left.plot(accounts, [row["hits_per_s"] for row in rows], "o-", color="tab:blue", label="hits/s (steady)")
    left.set_xscale("log")
    left.set_xlabel("accounts known to the worker")
    left.set_ylabel("hits/s", color="tab:blue")
    left.set_ylim(0, max(row["hits_per_s"] for row in rows) * 1.2)
    right = left.twinx()
    right.plot(accounts, [row["bytes_per_account"] for row in rows], "s--", color="tab:red", label="RSS bytes/account")
    right.set_ylabel("worker RSS bytes per account", color="tab:red")
    right.set_ylim(0, max(row["bytes_per_account"] for row in rows) * 1.2)
    left.set_title(f"usage-detector scale ({results['label']}, {results['machine']['cores']} cores)")
    left.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return f"wrote {path}"
