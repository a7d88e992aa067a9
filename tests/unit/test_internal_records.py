"""Records of the internal topics and tables carry a schema version, and are read defensively."""

import orjson
import pytest
from pydantic import TypeAdapter

from models.abuse import SignalClaim, SignalState, VerdictsDue
from models.errors import InvalidRecord
from models.internal import (
    ACCOUNT_EVENT,
    ACCOUNT_STATE,
    SCHEMA_VERSION,
    SIGNAL_RECORD,
    SIGNAL_STATE,
    USAGE_OBSERVED,
    USAGE_RECORDED,
    decode_internal,
    encode_internal,
)
from models.state import AccountState, Refund
from policy.abuse import judge
from policy.usage import observe
from streams.views import account_document
from tests.unit.factories import C, make_abuse_verdict, make_charge, make_hit, make_trial
from tests.unit.stages import detector_step


def account_state() -> AccountState:
    state = None
    for event in (make_trial(), make_hit(C), make_charge("ch_1")):
        state = detector_step(state, event, now=5).state
    return state


def records() -> list[tuple[TypeAdapter, object]]:
    trial = make_trial()
    claim = SignalClaim(signal=make_abuse_verdict().signal, account_id="a", trial_started_at=1)
    return [
        (ACCOUNT_EVENT, trial),
        (USAGE_OBSERVED, make_hit(C)),
        (ACCOUNT_EVENT, observe(None, make_hit(C), now=5).recorded),
        (USAGE_RECORDED, observe(None, make_hit(C), now=5).recorded),
        (ACCOUNT_EVENT, make_charge("ch_1")),
        (ACCOUNT_EVENT, make_abuse_verdict()),
        (SIGNAL_RECORD, claim),
        (SIGNAL_RECORD, VerdictsDue(signal=claim.signal, seq=3)),
        (ACCOUNT_STATE, account_state()),
        (SIGNAL_STATE, judge(None, claim).state),
        (SIGNAL_STATE, judge(None, claim).state.model_copy(update={"held": frozenset({"a"}), "held_since": 7})),
    ]


@pytest.mark.parametrize(("adapter", "record"), records(), ids=lambda r: type(r).__name__)
def test_every_internal_record_is_written_with_its_version_and_read_back(adapter, record) -> None:
    value = encode_internal(record)
    assert value.startswith(b'{"schema_version":1,')
    assert orjson.loads(value)["schema_version"] == SCHEMA_VERSION
    assert decode_internal(adapter, value, "record") == record


def test_a_claim_written_before_due_records_existed_reads_as_a_claim() -> None:
    """Claims had no `type` (they were the topic's only record), nor signals anything held."""
    claim = {"signal": {"kind": "device_id", "digest": "d"}, "account_id": "a", "trial_started_at": 1}
    assert decode_internal(SIGNAL_RECORD, orjson.dumps(claim), "signal record") == SignalClaim.model_validate(claim)
    state = {"signal": claim["signal"], "claimants": {"a": {"trial_started_at": 1}}, "seq": 1}
    assert decode_internal(SIGNAL_STATE, orjson.dumps(state), "stored state").held == frozenset()
    assert b"held" not in encode_internal(SignalState.model_validate(state)), "nothing held: nothing stored"


def test_a_record_written_before_versions_existed_is_version_1() -> None:
    state = account_state()
    unversioned = state.model_dump_json().encode()
    assert b"schema_version" not in unversioned
    assert decode_internal(ACCOUNT_STATE, unversioned, "stored state") == state


@pytest.mark.parametrize("version", [2, 0, "1", True, None, 1.5])
def test_a_record_of_another_schema_version_is_refused_with_its_own_code(version) -> None:
    value = orjson.dumps({**orjson.loads(encode_internal(account_state())), "schema_version": version})
    with pytest.raises(InvalidRecord) as caught:
        decode_internal(ACCOUNT_STATE, value, "stored state of acct-1")
    assert caught.value.code == "unsupported_schema_version"
    assert caught.value.message.startswith("stored state of acct-1: ")


@pytest.mark.parametrize(
    "value",
    [None, b"", b"not json", b"[1]", b'"text"', b'{"schema_version":1}', b'{"schema_version":1,"type":"nope","account_id":"a"}'],
)
def test_a_malformed_internal_record_is_unreadable(value) -> None:
    with pytest.raises(InvalidRecord) as caught:
        decode_internal(ACCOUNT_EVENT, value, "account event")
    assert caught.value.code == "unreadable_internal"
    assert caught.value.message.startswith("account event: ")


def test_the_http_lookup_serves_a_state_it_reads_and_refuses_one_of_another_version() -> None:
    """GET /accounts/{id} answers from the stored state: never a guess at a state this worker
    cannot read (the view turns the error into a 503)."""
    state = account_state()
    document = orjson.loads(account_document(encode_internal(state), state.account_id))
    assert document == {
        "account_id": state.account_id,
        "usage": state.usage.model_dump(mode="json"),
        "eligibility": state.eligibility.model_dump(mode="json"),
    }
    newer = orjson.dumps({**orjson.loads(encode_internal(state)), "schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(InvalidRecord) as caught:
        account_document(newer, state.account_id)
    assert caught.value.code == "unsupported_schema_version"


def test_an_accounts_details_take_no_stored_bytes_while_it_has_none() -> None:
    bare = AccountState(account_id="acct-1")
    detailed = bare.model_copy(update={"refunds": (Refund(charge_id="ch-1", refunded_at=5),)})
    assert {"refunds", "cancellation_claims"}.isdisjoint(orjson.loads(encode_internal(bare)))
    assert decode_internal(ACCOUNT_STATE, encode_internal(detailed), "state") == detailed
    assert decode_internal(ACCOUNT_STATE, encode_internal(bare), "state") == bare
