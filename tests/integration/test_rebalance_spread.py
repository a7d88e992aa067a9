"""No record is lost when a worker joins or leaves the group while records flow (issue 10).

Every account gets exactly one input record, so one lost record is one undecided account.
Here the records are spread over the whole of a rebalance (before, during and after it), as a
worker joins or leaves by SIGTERM.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.support.kafka import Producer
from tests.support.rebalance import Group, one_record_per_account, report, undecided, undecided_after_a_join

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("after_s", "spread_s"),
    [(0.0, 8.0)],
    ids=["spread-over-the-rebalance"],
)
def test_no_record_is_lost_when_a_worker_joins_under_load(group: Group, after_s: float, spread_s: float) -> None:
    left = undecided_after_a_join(group, after_s, spread_s)
    assert not left, report(group, left)


def test_no_record_is_lost_when_a_worker_leaves_by_sigterm_under_load(group: Group) -> None:
    first, second = group.start_worker(), group.start_worker()
    first.wait_ready()
    second.wait_ready()
    time.sleep(8)  # both settled: the next rebalance is the one the departure causes
    producer = Producer(group.servers)
    stopping = threading.Thread(target=lambda: (time.sleep(1.0), second.stop()))
    stopping.start()
    one_record_per_account(producer, group, spread_s=6.0)
    stopping.join()
    producer.close()
    left = undecided(group)
    assert not left, report(group, left)
