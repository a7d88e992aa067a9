"""No record is lost when a worker joins or leaves the group while records flow (issue 10).

Every account gets exactly one input record, so one lost record is one undecided account.
Here the records come as a burst at a chosen moment of a join's rebalance.
"""

from __future__ import annotations

import pytest

from tests.support.rebalance import Group, report, undecided_after_a_join

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("after_s", "spread_s"),
    [(0.0, 0.0), (1.0, 0.0), (2.5, 0.0)],
    ids=["burst-as-it-starts", "burst-1s-later", "burst-2.5s-later"],
)
def test_no_record_is_lost_when_a_worker_joins_under_load(group: Group, after_s: float, spread_s: float) -> None:
    left = undecided_after_a_join(group, after_s, spread_s)
    assert not left, report(group, left)
