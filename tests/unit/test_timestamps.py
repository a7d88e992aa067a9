import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.timestamps import MAX_MS, format_timestamp, parse_timestamp


@pytest.mark.parametrize(
    ("given_value", "expected_ms"),
    [
        ("2026-03-01T10:00:00Z", 1772359200000),
        ("2026-03-01T10:00:00.123Z", 1772359200123),
        ("2026-03-01T10:00:00.123999Z", 1772359200123),  # below a millisecond is cut, not rounded
        ("2026-03-01T11:00:00+01:00", 1772359200000),
        ("2026-03-01T05:00:00-05:00", 1772359200000),
        (1772359200000, 1772359200000),
        (0, 0),
    ],
)
def test_both_input_forms_give_epoch_milliseconds(given_value: object, expected_ms: int) -> None:
    assert parse_timestamp(given_value) == expected_ms


@pytest.mark.parametrize(
    "bad",
    ["2026-03-01T10:00:00", "2026-03-01", "yesterday", "", True, 1.5, None, -1, MAX_MS + 1, "1969-12-31T23:59:59Z", [1]],
)
def test_anything_else_is_rejected(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(bad)


def test_output_is_utc_milliseconds_with_z() -> None:
    assert format_timestamp(1772359200123) == "2026-03-01T10:00:00.123Z"
    assert format_timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert format_timestamp(MAX_MS) == "9999-12-31T23:59:59.999Z"


@given(st.integers(min_value=0, max_value=MAX_MS))
def test_format_then_parse_is_the_identity(ms: int) -> None:
    assert parse_timestamp(format_timestamp(ms)) == ms
