"""A batch the worker cannot decompress stops its partition and says what to install; the worker stays up.

The worker here runs without cramjam (a module of that name on its PYTHONPATH fails to import), as
on a machine where the codec libraries were not installed: aiokafka then reads gzip only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Detector, start_detector
from tests.support.kafka import Producer
from tests.support.records import hit
from tools.supervisor import HTTP

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def without_cramjam(bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Detector]:
    shim = tmp_path_factory.mktemp("hide-cramjam")
    (shim / "cramjam.py").write_text('raise ImportError("cramjam hidden by tests/integration/test_unreadable_batch.py")\n')
    yield from start_detector(bootstrap_servers, tmp_path_factory.mktemp("detector"), extra_env={"PYTHONPATH": str(shim)})


def new_account() -> str:
    return f"acct-{uuid.uuid4().hex[:10]}"


def health(detector: Detector) -> dict[str, Any]:
    return HTTP.get(f"{detector.worker.url}/healthz", timeout=5).json()


def used(detector: Detector, account_id: str) -> bool:
    return bool(detector.tail.records(detector.topics.usage, account_id))


def test_an_lz4_batch_stops_its_partition_and_healthz_says_what_to_install(without_cramjam: Detector) -> None:
    detector, hits = without_cramjam, without_cramjam.topics.hits
    before, compressed, other = new_account(), new_account(), new_account()
    detector.producer.send(hits, hit(before, "2026-03-01T10:00:00Z"), key=before, partition=0)
    detector.producer.flush()
    detector.tail.wait_for(f"usage of {before}", lambda: used(detector, before))

    lz4 = Producer(detector.bootstrap_servers, {"compression_type": "lz4"})
    # Clients send a batch uncompressed when compressing does not make it smaller: this one shrinks.
    record = hit(compressed, "2026-03-01T10:00:00Z", note="compressible " * 200)
    offset = lz4.send(hits, record, key=compressed, partition=0).get(timeout=30).offset
    lz4.close()

    def reported() -> list[dict[str, Any]] | None:
        detector.worker.check_running()  # the worker of old ended here, the fetcher crashed by the codec error
        try:
            return health(detector).get("unreadable_inputs")
        except httpx.HTTPError:  # going down: the next check says how
            return None

    [batch] = detector.tail.wait_for("/healthz to report the lz4 batch", reported)
    assert (batch["topic"], batch["partition"], batch["batch_offset"], batch["waits_at"]) == (hits, 0, offset, offset)
    assert "lz4" in batch["error"] and "pip install 'aiokafka[lz4,snappy,zstd]'" in batch["fix"]
    assert HTTP.get(f"{detector.worker.url}/healthz").status_code == 503
    assert detector.worker.metric("usage_detector_unreadable_input_partitions") == 1
    log = detector.worker.log_tail(400)
    assert f"{hits}[0]: the record batch at offset {offset} cannot be read" in log and "pip install" in log

    # The other partitions go on, and the worker with them.
    detector.producer.send(hits, hit(other, "2026-03-01T10:00:00Z"), key=other, partition=1)
    detector.producer.flush()
    detector.tail.wait_for(f"usage of {other}", lambda: used(detector, other))
    detector.worker.check_running()
    assert not used(detector, compressed)
