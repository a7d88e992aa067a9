"""Waiting for the broker to serve new topics before a worker joins its group."""

from __future__ import annotations

import time
from typing import Any

import pytest

from streams.topics import wait_until_served


def described(name: str, error_code: int = 0, leaders: tuple[int, ...] = (1, 1)) -> dict[str, Any]:
    return {
        "name": name,
        "error_code": error_code,
        "partitions": [{"partition_index": i, "leader_id": leader} for i, leader in enumerate(leaders)],
    }


class BrokerCatchingUp:
    """Answers describe_topics from a script of answers, one a call, then keeps the last."""

    def __init__(self, *answers: list[dict[str, Any]]) -> None:
        self.answers = list(answers)
        self.calls = 0

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        self.calls += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def test_returns_at_once_when_every_topic_is_served() -> None:
    broker = BrokerCatchingUp([described("a"), described("b")])
    wait_until_served(broker, ["a", "b"], deadline=time.monotonic() + 5)  # type: ignore[arg-type]
    assert broker.calls == 1


def test_waits_while_a_topic_is_unknown_or_a_partition_has_no_leader() -> None:
    broker = BrokerCatchingUp(
        [described("a", error_code=3, leaders=()), described("b")],  # unknown topic
        [described("a", leaders=(1, -1)), described("b")],  # partition 1 without a leader yet
        [described("a"), described("b")],
    )
    wait_until_served(broker, ["a", "b"], deadline=time.monotonic() + 5)  # type: ignore[arg-type]
    assert broker.calls == 3


def test_names_the_topics_still_unserved_at_the_deadline() -> None:
    broker = BrokerCatchingUp([described("a"), described("b", error_code=3, leaders=())])
    with pytest.raises(ConnectionError, match=r"does not serve b;"):
        wait_until_served(broker, ["a", "b"], deadline=time.monotonic() + 0.3)  # type: ignore[arg-type]
