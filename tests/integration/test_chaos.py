"""A small run of the chaos harness: SIGKILLed workers and scaling, checked against the oracle."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.chaos import assert_nothing_lost, run_chaos

pytestmark = pytest.mark.integration


def test_nothing_is_lost_or_conflicting_across_kills_and_rebalances(bootstrap_servers: str, tmp_path: Path) -> None:
    assert_nothing_lost(*run_chaos(bootstrap_servers, tmp_path, "--seed", "11"), tmp_path / "workers")
