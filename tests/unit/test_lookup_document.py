"""GET /accounts/{id}'s document is copied from the stored state, never guessed at."""

import orjson
import pytest

from models.errors import InvalidRecord
from models.internal import encode_internal
from models.state import AccountState
from streams.views import account_document
from tests.unit.test_internal_records import account_state


def test_an_account_without_records_yet_has_null_ones() -> None:
    state = AccountState(account_id="acct-new")
    assert orjson.loads(account_document(encode_internal(state), "acct-new")) == {
        "account_id": "acct-new",
        "usage": None,
        "eligibility": None,
    }


@pytest.mark.parametrize(
    "change",
    [{"account_id": None}, {"usage": "used"}, {"eligibility": ["eligible"]}],
    ids=["no account id", "usage not a record", "eligibility not a record"],
)
def test_a_stored_state_of_this_version_but_not_of_its_shape_is_refused(change: dict[str, object]) -> None:
    broken = orjson.dumps({**orjson.loads(encode_internal(account_state())), **change})
    with pytest.raises(InvalidRecord) as caught:
        account_document(broken, "acct-1")
    assert caught.value.code == "unreadable_internal"
