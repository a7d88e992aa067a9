"""Hypothesis against the edge: whatever the bytes, `decode` returns a valid record or raises
InvalidRecord with one of the README's codes, never anything else; and each kind of defect gets
the code the README gives it."""

from __future__ import annotations

import json
import re
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter

from models.codec import decode
from models.errors import DeadLetterCode, InvalidRecord
from models.inputs import BillingEvent, ConversionApiEvent, TrackingHit
from policy.translate import Translator
from tests.support.fuzz_records import (
    KINDS,
    KNOWN_FIELDS,
    LIMIT,
    account_ids,
    dumps,
    json_values,
    malformed,
    short_text,
    timestamps,
    valid_records,
)
from tests.unit.stages import detector_step

ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "hits": TypeAdapter(TrackingHit),
    "capi": TypeAdapter(ConversionApiEvent),
    "billing": TypeAdapter(BillingEvent),
}
CODES = set(get_args(DeadLetterCode))
ACCOUNT_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(kind: str, value: bytes | None) -> BaseModel | InvalidRecord:
    """decode's whole contract: a valid model, or InvalidRecord with a known code and a message."""
    try:
        record = decode(ADAPTERS[kind], value, LIMIT)
    except InvalidRecord as error:
        assert error.code in CODES and error.message
        return error
    assert isinstance(record, BaseModel)
    assert value is not None and 0 < len(value) <= LIMIT
    assert ACCOUNT_ID.fullmatch(record.account_id)
    assert type(record).model_validate(record.model_dump()) == record  # it is a valid model
    return record


@FUZZ
@given(kind=st.sampled_from(KINDS), value=st.none() | st.binary(max_size=LIMIT + 64))
def test_any_bytes_give_a_record_or_an_invalid_record(kind: str, value: bytes | None) -> None:
    check(kind, value)


_field_values = json_values | timestamps() | st.integers() | st.floats() | st.text(max_size=200) | st.sampled_from(
    ["trial_started", "charged", "refund_issued", "dashboard", "owner", "renewal", "USD"]
)


@FUZZ
@given(
    kind=st.sampled_from(KINDS),
    fields=st.dictionaries(st.sampled_from(sorted(KNOWN_FIELDS)) | short_text, _field_values, max_size=12),
)
def test_any_object_with_the_known_field_names_gives_a_record_or_an_invalid_record(kind: str, fields: dict[str, Any]) -> None:
    check(kind, json.dumps(fields, ensure_ascii=False, allow_nan=True).encode())  # NaN and Infinity too


@FUZZ
@given(sample=st.sampled_from(KINDS).flatmap(malformed))
def test_each_defect_gets_its_code(sample: Any) -> None:
    outcome = check(sample.kind, sample.value)
    assert isinstance(outcome, InvalidRecord), f"accepted a record with a defect ({sample.code}): {sample.value!r}"
    assert outcome.code == sample.code, f"{outcome.code} ({outcome.message}) for {sample.value!r}"


@FUZZ
@given(data=st.data(), kind=st.sampled_from(KINDS))
def test_valid_records_are_accepted_as_sent(data: st.DataObject, kind: str) -> None:
    record = data.draw(valid_records(kind))
    value = dumps(record)
    assert len(value) <= LIMIT, "the generator keeps valid records under the fuzz limit"
    outcome = check(kind, value)
    assert not isinstance(outcome, InvalidRecord), f"{outcome} for {value!r}"
    assert outcome.account_id == record["account_id"]


@pytest.mark.parametrize("kind", KINDS)
def test_nan_deep_nesting_and_huge_numbers(kind: str) -> None:
    assert check(kind, b'{"received_at": NaN}').code == "not_json"  # type: ignore[union-attr]
    assert check(kind, b"[" * 1025 + b"]" * 1025).code == "not_json"  # type: ignore[union-attr]
    assert check(kind, b"[" * 1024 + b"]" * 1024).code == "not_an_object"  # type: ignore[union-attr]
    assert check(kind, b'{"x": 1e400}').code == "not_json"  # type: ignore[union-attr]


TRANSLATE = {"hits": "hit", "capi": "capi", "billing": "billing"}


@FUZZ
@given(data=st.data(), kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=3))
def test_valid_records_cross_the_edge_and_the_policy_without_raising(data: st.DataObject, kinds: list[str]) -> None:
    """What route-inputs and process-accounts do with a valid record: nothing of it may raise
    (an exception there crashes the agent, and the record is lost)."""
    edge = Translator(b"fuzz-signal-key")
    state, account = None, data.draw(account_ids)
    for kind in kinds:
        record = data.draw(valid_records(kind))
        event = getattr(edge, TRANSLATE[kind])(decode(ADAPTERS[kind], dumps({**record, "account_id": account}), LIMIT))
        step = detector_step(state, event, now=1_772_359_200_000)
        assert all(r.account_id == account for r in step.records)
        assert step.records or state is not None, "an account's first event publishes its records"
        state = step.state


@pytest.mark.parametrize("url", ["http://[", "https://[::1", "http://exa\u2100mple.com", "["])
def test_a_page_url_no_parser_understands_is_still_usage(url: str) -> None:
    """Found by the integration fuzz: such a page_url crashed route-inputs (urlsplit's ValueError)."""
    hit = decode(ADAPTERS["hits"], dumps({"hit_id": "h", "account_id": "a", "received_at": 1, "page_url": url}), LIMIT)
    observed = Translator(b"k").hit(hit)
    assert observed.page_signal is None and observed.evidence.page_url == url
