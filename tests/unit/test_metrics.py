from models.codec import encode
from policy.account import apply
from models.inputs import Charged
from models.internal import TrialBegan
from streams.metrics import count_states, eligibility_state_of


def test_the_eligibility_state_is_found_in_stored_accounts_without_parsing() -> None:
    trial = apply(None, TrialBegan(event_id="e1", account_id="a", occurred_at=1), now=5)
    charged = apply(
        trial.state,
        Charged(type="charged", event_id="e2", account_id="a", occurred_at=2, charge_id="c", amount_cents=1, currency="USD", reason="trial_conversion"),
        now=6,
    )
    assert eligibility_state_of(encode(trial.state)) == "no_charge"
    assert eligibility_state_of(encode(charged.state)) == "eligible"
    assert count_states([encode(trial.state), encode(charged.state), encode(charged.state)]) == {"no_charge": 1, "eligible": 2}
