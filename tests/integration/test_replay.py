"""`usage-detector replay` rebuilds the same final records from the inputs, beside the live app."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Detector, start_detector
from tests.support.records import cancellation, capi, charge, hit, refund, trial

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live(bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Detector]:
    yield from start_detector(bootstrap_servers, tmp_path_factory.mktemp("live"))


def test_replay_into_a_fresh_app_equals_the_live_outputs(live: Detector, tmp_path: Path) -> None:
    accounts = [f"replay-{uuid.uuid4().hex[:8]}" for _ in range(6)]
    a, b, c, d, e, f = accounts
    records = [
        ("billing", trial(a, "2026-03-01T00:00:00Z", card_fingerprint=f"card-{a}")),
        ("billing", charge(a, "2026-03-15T00:00:00Z", "c1")),
        ("billing", trial(b, "2026-03-02T00:00:00Z", card_fingerprint=f"card-{a}")),
        ("hits", hit(b, "2026-03-03T00:00:00Z", page_url="https://b.example/")),
        ("billing", trial(c, 1772323200000)),
        ("billing", cancellation(c, "2026-03-05T00:00:00Z")),
        ("billing", charge(c, "2026-03-15T00:00:00Z", "c1")),
        ("capi", capi(d, "2026-03-04T00:00:00Z", integration="shopify")),
        ("billing", charge(e, "2026-03-15T00:00:00Z", "c1", reason="renewal")),
        ("billing", refund(e, "2026-03-16T00:00:00Z", "c1")),
        ("billing", trial(f, "2026-03-01T00:00:00Z")),
        ("hits", b"not json"),
    ]
    topics = {"billing": live.topics.billing, "hits": live.topics.hits, "capi": live.topics.capi}
    for topic, value in records:
        live.producer.send(topics[topic], value, key="k")
    live.producer.flush()
    live.tail.wait_for(
        "every account decided",
        lambda: all(live.tail.records(live.topics.eligibility, account) for account in accounts)
        and live.tail.records(live.topics.dead_letter),
    )
    env = ["--kafka-bootstrap-servers", live.bootstrap_servers, "--app-id", live.topics.app_id,
           "--topic-hits", live.topics.hits, "--topic-capi", live.topics.capi, "--topic-billing", live.topics.billing,
           "--topic-usage", live.topics.usage, "--topic-eligibility", live.topics.eligibility,
           "--topic-dead-letter", live.topics.dead_letter]
    command = [str(Path(sys.executable).with_name("usage-detector")), "replay", *env,
               "--timeout", "180", "--workdir", str(tmp_path)]
    replayed = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)
    assert replayed.returncode == 0, replayed.stdout[-3000:] + replayed.stderr[-3000:]
    assert "the replay equals the live outputs" in replayed.stdout
    assert "100.0%" in replayed.stdout
    assert "eligibility  equal 6  different 0  only_live 0  only_replay 0" in replayed.stdout
