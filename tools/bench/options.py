"""What a run is asked to do, and what of it (and of the workers' settings) its results record."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from streams.settings import Settings
from tools.bench.kafka_io import INPUT_PARTITIONS
from tools.bench.lookup import LookupPlan
from tools.bench.storm import StormPlan

# The worker settings a run records: an allow-list, so that a secret (the API token, the signal
# key, a SASL or key password), a credential's file or user, or a setting added later is never
# written into a results file that gets committed.
RECORDED_SETTINGS = (
    "app_id", "partitions", "replication_factor", "web_host", "store", "state_dir", "max_record_bytes",
    "usage_filter_accounts", "usage_filter_save_interval_s", "census_interval_s", "producer_linger_ms", "stream_buffer_records",
    "crowded_signal_claimants", "duplicate_window_events", "duplicate_window_days", "judge_batch_s",
    "kafka_security_protocol", "kafka_sasl_mechanism", "kafka_ssl_check_hostname",
)  # fmt: skip
RECORDED_ENV = tuple(f"USAGE_DETECTOR_{name.upper()}" for name in RECORDED_SETTINGS)


@dataclass(frozen=True)
class AgentsPlan:
    """The agents stage (tools/bench/agents.py): accounts, and the stream buffer sizes it compares."""

    accounts: int
    stream_buffers: tuple[int, ...]


@dataclass
class Options:
    hits: int
    accounts: int
    stages: tuple[str, ...]
    scale_accounts: tuple[int, ...]
    scale_hits: int
    lag_seconds: float
    lag_starts_per_s: float
    restart_hits: int
    partitions: int
    out: Path
    label: str
    keep_topics: bool
    profile: bool
    tiny: bool
    timeout: float
    lookup: LookupPlan
    storm: StormPlan
    agents: AgentsPlan
    max_rss: int = 0
    scale_trial_share: float = 0.1


def bench_settings(o: Options) -> dict[str, Any]:
    """What the run was asked to do, and the worker settings on the allow-list above."""
    worker = Settings(partitions=o.partitions).model_dump(mode="json", include=set(RECORDED_SETTINGS))
    return {
        "bench": {
            "hits": o.hits,
            "accounts": o.accounts,
            "stages": list(o.stages),
            "scale_accounts": list(o.scale_accounts),
            "scale_hits": o.scale_hits,
            "scale_trial_share": o.scale_trial_share,
            "lag_seconds": o.lag_seconds,
            "lag_starts_per_s": o.lag_starts_per_s,
            "restart_hits": o.restart_hits,
            "partitions": o.partitions,
            "input_partitions": INPUT_PARTITIONS,
            "lookup": asdict(o.lookup),
            "storm": asdict(o.storm),
            "agents": asdict(o.agents),
            "tiny": o.tiny,
        },
        "worker": worker,
        "worker_env": {name: os.environ[name] for name in RECORDED_ENV if name in os.environ},
    }
