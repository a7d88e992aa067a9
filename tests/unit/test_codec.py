"""Decoding at the edge: each kind of unusable record gets its own dead-letter code."""

import orjson
import pytest
from pydantic import TypeAdapter

from models.codec import decode, encode
from models.errors import InvalidRecord
from models.inputs import BillingEvent, Charged, TrackingHit

HITS = TypeAdapter(TrackingHit)
BILLING = TypeAdapter(BillingEvent)
LIMIT = 4096
VALID_HIT = {"hit_id": "h1", "account_id": "acct-1", "received_at": "2026-03-01T10:00:00Z"}


def hit_with(**changes: object) -> bytes:
    return orjson.dumps({**VALID_HIT, **changes})


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (None, "empty_value"),
        (b"", "empty_value"),
        (b"x" * (LIMIT + 1), "too_large"),
        (b'{"hit_id": "\xff"}', "invalid_encoding"),
        (b"not json", "not_json"),
        (b'{"received_at": NaN}', "not_json"),
        (b"[" * 2000 + b"]" * 2000, "not_json"),
        (b'"a string"', "not_an_object"),
        (b"[]", "not_an_object"),
        (b"null", "not_an_object"),
        (orjson.dumps({"account_id": "a", "received_at": 1}), "missing_field"),
        (hit_with(hit_id=None), "missing_field"),
        (hit_with(hit_id=""), "invalid_field"),
        (hit_with(hit_id="x" * 129), "invalid_field"),
        (hit_with(hit_id=17), "invalid_field"),
        (hit_with(received_at="2026-03-01T10:00:00"), "invalid_field"),
        (hit_with(received_at=True), "invalid_field"),
        (hit_with(received_at=2**62), "invalid_field"),
        (b'{"hit_id": "h", "account_id": "a", "received_at": 100000000000000000000000}', "invalid_field"),
        (hit_with(account_id="has space"), "invalid_account_id"),
        (hit_with(account_id="x" * 65), "invalid_account_id"),
        (hit_with(account_id=""), "invalid_account_id"),
        (hit_with(account_id=42), "invalid_account_id"),
    ],
)
def test_unusable_hits_are_rejected_with_their_code(value: bytes | None, code: str) -> None:
    with pytest.raises(InvalidRecord) as caught:
        decode(HITS, value, LIMIT)
    assert caught.value.code == code
    assert caught.value.message


def test_unknown_extra_fields_are_ignored_and_key_fields_kept() -> None:
    hit = decode(HITS, hit_with(brand_new_field={"nested": [1, 2]}), LIMIT)
    assert (hit.hit_id, hit.account_id, hit.received_at) == ("h1", "acct-1", 1772359200000)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"type": "teleported"}, "unknown_type"),
        ({}, "missing_field"),
        ({"type": None}, "missing_field"),  # null is missing, not an unknown type
        ({"type": 7}, "unknown_type"),
        ({"type": "charged", "charge_id": "c", "amount_cents": "4900", "currency": "USD", "reason": "renewal"}, "invalid_field"),
        ({"type": "charged", "charge_id": "c", "amount_cents": -1, "currency": "USD", "reason": "renewal"}, "invalid_field"),
        ({"type": "charged", "charge_id": "c", "amount_cents": 1, "currency": "USD", "reason": "gift"}, "invalid_field"),
        ({"type": "charged", "amount_cents": 1, "currency": "USD", "reason": "renewal"}, "missing_field"),
        ({"type": "cancellation_requested", "channel": "fax", "requested_by": "owner"}, "invalid_field"),
        ({"type": "refund_issued"}, "missing_field"),
    ],
)
def test_unusable_billing_events_are_rejected_with_their_code(fields: dict[str, object], code: str) -> None:
    value = orjson.dumps({"event_id": "e1", "account_id": "acct-1", "occurred_at": 1, **fields})
    with pytest.raises(InvalidRecord) as caught:
        decode(BILLING, value, LIMIT)
    assert caught.value.code == code


def test_every_billing_type_of_the_contract_decodes() -> None:
    base = {"event_id": "e1", "account_id": "acct-1", "occurred_at": "2026-03-01T10:00:00Z"}
    variants = [
        {"type": "trial_started", "identity": {"email": "a@b.c", "signup_ip": "1.2.3.4"}, "trial_ends_at": 1},
        {"type": "subscription_started"},
        {"type": "charged", "charge_id": "c", "amount_cents": 0, "currency": "eur", "reason": "upgrade"},
        {"type": "cancellation_requested", "channel": "payment_method_revoked", "requested_by": "other"},
        {"type": "refund_issued", "charge_id": "c"},
        {"type": "plan_changed", "plan": "pro", "anything": ["goes"]},
    ]
    decoded = [decode(BILLING, orjson.dumps({**base, **v}), LIMIT) for v in variants]
    assert [d.type for d in decoded] == [v["type"] for v in variants]
    charged = decoded[2]
    assert isinstance(charged, Charged) and charged.currency == "EUR"


def test_encode_writes_contract_timestamps() -> None:
    hit = decode(HITS, hit_with(received_at=1772359200123), LIMIT)
    assert orjson.loads(encode(hit))["received_at"] == "2026-03-01T10:00:00.123Z"
