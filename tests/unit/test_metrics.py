import asyncio
import logging

from models.abuse import Signal
from models.codec import encode
from models.inputs import Charged
from models.internal import TrialBegan
from policy.abuse import CrowdedSignal
from streams.metrics import Metrics, TableCensus, count_states, eligibility_state_of
from streams.stages.signals import report_crowded
from tests.unit.stages import detector_step


def test_the_eligibility_state_is_found_in_stored_accounts_without_parsing() -> None:
    trial = detector_step(None, TrialBegan(event_id="e1", account_id="a", occurred_at=1), now=5)
    charged = detector_step(
        trial.state,
        Charged(type="charged", event_id="e2", account_id="a", occurred_at=2, charge_id="c", amount_cents=1, currency="USD", reason="trial_conversion"),
        now=6,
    )
    assert eligibility_state_of(encode(trial.state)) == "no_charge"
    assert eligibility_state_of(encode(charged.state)) == "eligible"
    assert count_states([encode(trial.state), encode(charged.state), encode(charged.state)]) == {"no_charge": 1, "eligible": 2}


def test_the_census_counts_tables_and_states_and_yields_to_the_loop_while_walking() -> None:
    trial = detector_step(None, TrialBegan(event_id="e1", account_id="a", occurred_at=1), now=5)
    accounts = {f"a{n}".encode(): encode(trial.state) for n in range(12)}
    signals = {b"s1": b"{}", b"s2": b"{}"}
    census = TableCensus({"accounts": accounts, "signals": signals})
    switches = 0

    async def walk() -> None:
        nonlocal switches
        task = asyncio.ensure_future(census.take(yield_every=5))
        while not task.done():
            switches += 1
            await asyncio.sleep(0)

    asyncio.run(walk())
    assert census.sizes == {"accounts": 12, "signals": 2}
    assert census.states == {"no_charge": 12}
    assert census.taken_at is not None
    assert switches >= 2  # 12 keys, a yield every 5: the loop ran in between


def test_a_crowded_signal_is_counted_by_kind_and_logged_with_its_first_accounts(caplog) -> None:
    metrics = Metrics()
    crowd = CrowdedSignal(signal=Signal(kind="device_id", digest="ab" * 32), claimants=100, earliest=("a1", "a2", "a3"))
    with caplog.at_level(logging.WARNING, logger="streams.stages.signals"):
        report_crowded(metrics, crowd)
    assert metrics.registry.get_sample_value("usage_detector_crowded_signals_total", {"kind": "device_id"}) == 1
    (line,) = caplog.messages
    assert "device_id abababababababab has 100 claimants" in line and "a1, a2, a3" in line
    assert "USAGE_DETECTOR_NEVER_EVIDENCE" in line


def test_after_a_census_every_state_has_its_count_zero_included_and_none_before() -> None:
    """Dashboards sum accounts by state: a worker that holds none of a state (or no account yet) says 0."""
    metrics = Metrics()
    census = TableCensus({"accounts": {}, "signals": {}})
    metrics.watch(lambda: iter(()), census)

    def states() -> dict[str, float]:
        return {s.labels["state"]: s.value for f in metrics.registry.collect() if f.name == "usage_detector_accounts" for s in f.samples}

    assert states() == {}  # not counted yet: unknown, not 0
    asyncio.run(census.take())
    assert states() == {"refunded": 0, "ineligible": 0, "no_charge": 0, "eligible": 0, "discretionary": 0}


def test_a_census_without_the_accounts_table_reports_no_accounts_by_state() -> None:
    """The usage process's census (its `usage` table): its zeros would stand in for the accounts
    process's counts in the worker's merged metrics while that one has not counted yet."""
    metrics = Metrics()
    census = TableCensus({"usage": {b"a": b"{}"}})
    metrics.watch(lambda: iter(()), census)
    asyncio.run(census.take())
    families = {f.name: f.samples for f in metrics.registry.collect()}
    assert families["usage_detector_accounts"] == []
    assert [(s.labels["table"], s.value) for s in families["usage_detector_table_keys"]] == [("usage", 1)]
