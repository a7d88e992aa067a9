import json

from models.outputs import RefundEligibility
from models.schemas import SCHEMA_DIR, render


def test_committed_input_schemas_are_current() -> None:
    for filename, text in render().items():
        committed = SCHEMA_DIR / filename
        assert committed.exists(), f"{committed} is missing: run `python -m models.schemas`"
        assert committed.read_text() == text, f"{committed} is stale: run `python -m models.schemas`"


def test_the_eligibility_schema_documents_linked_count_beside_the_capped_list() -> None:
    schema = json.loads((SCHEMA_DIR / "refund-eligibility.schema.json").read_text())
    abuse = schema["$defs"]["AbuseSummary"]["properties"]
    assert abuse["linked_count"]["type"] == "integer"
    assert "at most 25" in abuse["linked_accounts"]["description"]
    assert schema["properties"]["decided_at"]["type"] == "string"  # outputs: RFC 3339 only


def test_eligibility_records_from_before_linked_count_are_still_read() -> None:
    old = {
        "account_id": "a", "state": "ineligible", "reasons": ["repeated_trial_abuse"], "charge": None, "trial": True,
        "usage_started_at": None, "abuse": {"suspected": True, "linked_accounts": ["z"], "signals": ["email"]},
        "version": 3, "decided_at": "2026-03-01T10:00:00.000Z", "policy_version": "2026-11-26",
    }
    record = RefundEligibility.model_validate(old)
    assert (record.abuse.linked_accounts, record.abuse.linked_count) == (("z",), 0)
