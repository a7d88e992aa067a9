import pytest

from models.errors import InvalidRecord
from streams.edge import decode_safely


def test_a_failure_that_is_not_bad_input_becomes_an_unprocessable_dead_letter() -> None:
    def broken(value: bytes | None):
        raise ValueError("a bug")

    with pytest.raises(InvalidRecord) as caught:
        decode_safely(broken, "tracking.hits", b"{}")
    assert caught.value.code == "unprocessable" and "ValueError: a bug" in caught.value.message


def test_bad_input_keeps_its_own_code() -> None:
    def rejecting(value: bytes | None):
        raise InvalidRecord("not_json", "nope")

    with pytest.raises(InvalidRecord) as caught:
        decode_safely(rejecting, "tracking.hits", b"x")
    assert caught.value.code == "not_json"
