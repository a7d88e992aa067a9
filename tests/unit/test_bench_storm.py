"""The storm stage (tools/bench/storm.py): what it produces, and the standings "settled" is checked against."""

from __future__ import annotations

import orjson

from tools.bench.storm import billing_history, expected_abuse, storm_account, storm_trials
from tools.workerpool import TopicSet


def test_a_storm_shares_one_device_and_settles_to_the_plain_count_of_earlier_trials() -> None:
    in_order = storm_trials("s", 30, latest_first=False)
    assert [key for key, _ in storm_trials("s", 30, latest_first=True)] == [key for key, _ in in_order][::-1]
    identities = [orjson.loads(value)["identity"] for _, value in in_order]
    assert {i["device_id"] for i in identities} == {"s-placeholder-device"} and len({i["email"] for i in identities}) == 30
    expected = expected_abuse(TopicSet.named("t", app_id="t"), "s", 30)
    assert [expected[storm_account("s", n)].linked_count for n in range(30)] == list(range(30))
    assert expected[storm_account("s", 29)].linked_accounts == tuple(storm_account("s", n) for n in range(25))
    assert not expected[storm_account("s", 0)].suspected and expected[storm_account("s", 1)].signals == ("device_id",)


def test_one_accounts_billing_history_is_as_many_events_each_with_its_own_id() -> None:
    history = [orjson.loads(value) for _, value in billing_history("acct", 1_000)]
    assert len(history) == len({event["event_id"] for event in history}) == 1_000
    assert [event["type"] for event in history[:3]] == ["trial_started", "charged", "plan_changed"]
