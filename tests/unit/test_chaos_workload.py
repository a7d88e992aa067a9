"""The chaos harness's workloads, oracle and per-record ledger (no broker)."""

from __future__ import annotations

from typing import Any

import pytest

from streams.settings import Settings
from tools.chaos_workload import Workload, decode_inputs, expected_outcome, generate, generate_sparse
from tools.ledger import account_for

WINDOW = Settings().duplicate_window()


def test_the_oracle_sees_every_kind_of_event_in_the_workload() -> None:
    workload = generate(seed=3, accounts=300, records=3000)
    assert len(workload.records) >= 3000 and workload.bad
    expected = expected_outcome(decode_inputs(workload, Settings()), WINDOW)
    states = {e["eligibility"]["state"] for e in expected.values() if e["eligibility"]}
    assert {"eligible", "discretionary", "refunded", "ineligible", "no_charge"} <= states
    assert any(e["eligibility"]["abuse"]["suspected"] for e in expected.values() if e["eligibility"])


def outputs_of(expected: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """What a detector that decided exactly as the oracle would have published."""
    return {
        kind: [record | {"version": 1} for e in expected.values() if (record := e[kind])]
        for kind in ("usage", "eligibility")
    } | {"dead_letter": []}


@pytest.fixture(scope="module")
def sparse() -> Workload:
    return generate_sparse(seed=7, records=600)


def test_every_record_of_the_sparse_workload_is_seen_in_the_outputs(sparse: Workload) -> None:
    decoded = decode_inputs(sparse, Settings())
    expected = expected_outcome(decoded, WINDOW)
    ledger = account_for(decoded, outputs_of(expected), expected, bad_offsets=set())
    assert ledger.unaccounted == 0 and not ledger.without_effect
    assert sum(ledger.observed.values()) == len(sparse.records) - len(sparse.bad)
    states = {e["eligibility"]["state"] for e in expected.values() if e["eligibility"]}
    assert states == {"no_charge", "eligible", "discretionary", "ineligible", "refunded"}


def test_one_lost_record_of_the_sparse_workload_is_always_seen(sparse: Workload) -> None:
    decoded = decode_inputs(sparse, Settings())
    expected = expected_outcome(decoded, WINDOW)
    # A record reaches only its account and, for a shared device, the account linked to it.
    families: dict[str, list[int]] = {}
    for index, event in enumerate(decoded):
        if event is not None:  # an unusable record's dead letter is accounted for separately
            families.setdefault(event.account_id.removesuffix("-again"), []).append(index)
    for members in families.values():
        for index in members:
            rest = [decoded[i] for i in members if i != index]
            accounts = {decoded[i].account_id for i in members}  # type: ignore[union-attr]
            published = {account: outcome for account, outcome in expected.items() if account not in accounts}
            published |= expected_outcome(rest, WINDOW)
            ledger = account_for(decoded, outputs_of(published), expected, bad_offsets=set())
            assert ledger.unaccounted >= 1, f"losing record {index} ({sparse.records[index][0]}) went unseen"


def test_a_missing_dead_letter_is_unaccounted(sparse: Workload) -> None:
    decoded = decode_inputs(sparse, Settings())
    expected = expected_outcome(decoded, WINDOW)
    published = outputs_of(expected) | {"dead_letter": [{"topic": "t", "partition": 0, "offset": 1}]}
    ledger = account_for(decoded, published, expected, bad_offsets={("t", 0, 1), ("t", 0, 2)})
    assert ledger.observed["dead letter"] == 1 and ledger.unaccounted == 1


def test_the_dense_workload_accounts_for_records_without_effect() -> None:
    workload = generate(seed=3, accounts=200, records=2000)
    decoded = decode_inputs(workload, Settings())
    expected = expected_outcome(decoded, WINDOW)
    ledger = account_for(decoded, outputs_of(expected), expected, bad_offsets=set())
    assert ledger.unaccounted == 0
    assert ledger.without_effect["later evidence than the account's first"] > 0
    assert ledger.without_effect["duplicate event_id"] > 0
