"""The chaos harness's workload and oracle (no broker)."""

from streams.chaos import expected_outcome, generate
from streams.settings import Settings


def test_the_oracle_sees_every_kind_of_event_in_the_workload() -> None:
    workload = generate(seed=3, accounts=300, records=3000)
    assert len(workload.records) >= 3000 and workload.bad
    expected = expected_outcome(workload, Settings())
    states = {e["eligibility"]["state"] for e in expected.values() if e["eligibility"]}
    assert {"eligible", "discretionary", "refunded", "ineligible", "no_charge"} <= states
    assert any(e["eligibility"]["abuse"]["suspected"] for e in expected.values() if e["eligibility"])
