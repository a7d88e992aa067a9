"""The demo's traffic: valid under the contract except the few records that are meant not to be."""

from collections import Counter

import orjson
from pydantic import TypeAdapter

from models.codec import decode
from models.errors import InvalidRecord
from models.inputs import BillingEvent, ConversionApiEvent, TrackingHit
from tools.traffic import generate

ADAPTERS = {"hits": TypeAdapter(TrackingHit), "capi": TypeAdapter(ConversionApiEvent), "billing": TypeAdapter(BillingEvent)}


def dead_letter_codes(accounts: int, seed: int) -> Counter[str]:
    codes: Counter[str] = Counter()
    for send in generate(accounts, seed).sends:
        try:
            decode(ADAPTERS[send.topic], send.value, 262_144)
        except InvalidRecord as error:
            codes[error.code] += 1
    return codes


def test_the_same_seed_gives_the_same_traffic() -> None:
    assert generate(12, 3) == generate(12, 3)
    assert generate(12, 3) != generate(12, 4)


def test_only_the_deliberately_malformed_records_are_unusable() -> None:
    assert dead_letter_codes(60, 7) == Counter({"not_json": 1, "unknown_type": 1, "invalid_account_id": 1})


def test_every_account_starts_a_trial_and_is_sent_in_time_order() -> None:
    traffic = generate(12, 3)
    trials = {
        orjson.loads(s.value)["account_id"] for s in traffic.sends if s.topic == "billing" and b'"trial_started"' in s.value
    }
    assert trials == set(traffic.account_ids)
    assert [s.at for s in traffic.sends] == sorted(s.at for s in traffic.sends)
