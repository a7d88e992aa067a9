"""What of the bench (`tools.bench.stages.Bench`) a stage kept in a module of its own uses."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from tools.bench.options import Options
from tools.bench.progress import Progress
from tools.supervisor import WorkerProcess
from tools.workerpool import TopicSet

HEALTH_TIMEOUT_S = 120.0  # a worker's start to ready, on a busy small machine


class Bench(Protocol):
    o: Options
    servers: str
    tag: str
    workdir: Path
    progress: Progress

    def worker(self, topics: TopicSet, state_dir: Path, extra_env: dict[str, str] | None = None) -> WorkerProcess: ...

    def prefill(self, topics: TopicSet, what: str, hits: list[tuple[bytes, bytes]], billing: list[tuple[bytes, bytes]]) -> float: ...
