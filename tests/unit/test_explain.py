from models.abuse import AbuseVerdict, EarlierTrial, Signal
from models.inputs import CancellationRequested, Charged, RefundIssued
from models.internal import TrialBegan, UsageObserved
from models.outputs import CapiEvidence
from policy.explain import explain
from tests.unit.stages import detector_step


def history(*events):
    state = None
    for event in events:
        state = detector_step(state, event, now=1772359200000).state
    return state


def charged(at: int, charge_id: str, reason: str = "trial_conversion") -> Charged:
    return Charged(type="charged", event_id=f"e-{charge_id}", account_id="a", occurred_at=at, charge_id=charge_id, amount_cents=4900, currency="USD", reason=reason)


def test_explains_the_rule_the_usage_and_the_charges() -> None:
    state = history(
        TrialBegan(event_id="t", account_id="a", occurred_at=0),
        charged(1000, "c1"),
        UsageObserved(account_id="a", evidence=CapiEvidence(id="ev9", integration="shopify", received_at=2000)),
    )
    text = "\n".join(explain(state))
    assert "a: discretionary" in text
    assert "rule 5" in text and "shows usage" in text
    assert "conversion_api ev9 (shopify)" in text and "1970-01-01T00:00:02.000Z" in text
    assert "latest charge: c1 trial_conversion 49.00 USD" in text


def test_explains_refunds_cancellations_and_abuse() -> None:
    digest = Signal(kind="card_fingerprint", digest="ab" * 32)
    state = history(
        TrialBegan(event_id="t", account_id="a", occurred_at=0),
        CancellationRequested(type="cancellation_requested", event_id="x", account_id="a", occurred_at=500, channel="email", requested_by="owner"),
        charged(1000, "c1", reason="renewal"),
        charged(900, "c0", reason="trial_conversion"),
        RefundIssued(type="refund_issued", event_id="r", account_id="a", occurred_at=1100, charge_id="c0"),
        AbuseVerdict(account_id="a", signal=digest, seq=1, linked=True, counted=1, earliest=(EarlierTrial(account_id="z", trial_started_at=0),)),
    )
    text = "\n".join(explain(state))
    assert "a: ineligible" in text and "rule 2" in text
    assert "charge before it: c0" in text and "(refunded)" in text
    assert "claimed outside the dashboard" in text
    assert "trials of z came earlier with the same card_fingerprint" in text


def test_abuse_says_how_many_linked_accounts_are_not_listed() -> None:
    digest = Signal(kind="device_id", digest="cd" * 32)
    earliest = tuple(EarlierTrial(account_id=f"z{n:02d}", trial_started_at=n) for n in range(25))
    state = history(
        TrialBegan(event_id="t", account_id="a", occurred_at=100),
        AbuseVerdict(account_id="a", signal=digest, seq=1, linked=True, counted=40, earliest=earliest),
    )
    text = "\n".join(explain(state))
    assert "trials of z00, z01," in text and "z24 and 15 more came earlier with the same device_id" in text


def test_no_charge_names_rule_3() -> None:
    assert "rule 3" in "\n".join(explain(history(TrialBegan(event_id="t", account_id="a", occurred_at=0))))
