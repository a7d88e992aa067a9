"""Timestamps in: exactly RFC 3339 `date-time` with a zone, or epoch milliseconds. Out: UTC, ms, Z."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.timestamps import MAX_MS, RFC3339_PATTERN, format_timestamp, parse_timestamp
from tests.support.fuzz_records import NOT_RFC3339, rfc3339_instants

T0 = 1772359200000  # 2026-03-01T10:00:00Z


@pytest.mark.parametrize(
    ("given_value", "expected_ms"),
    [
        ("2026-03-01T10:00:00Z", T0),
        ("2026-03-01T10:00:00.123Z", T0 + 123),
        ("2026-03-01T10:00:00.123999Z", T0 + 123),  # below a millisecond is cut, not rounded
        ("2026-03-01T10:00:00.1Z", T0 + 100),
        ("2026-03-01T10:00:00.12Z", T0 + 120),
        ("2026-03-01T10:00:00.1234Z", T0 + 123),
        ("2026-03-01T10:00:00.12345Z", T0 + 123),
        ("2026-03-01T10:00:00.1234567Z", T0 + 123),
        ("2026-03-01T10:00:00.12345678Z", T0 + 123),
        ("2026-03-01T10:00:00.999999999Z", T0 + 999),
        ("2026-03-01T10:00:00.000000000001Z", T0),  # the grammar has no limit on the digits
        ("2026-03-01t10:00:00z", T0),  # RFC 3339 5.6: T and Z may be lower case
        ("2026-03-01t10:00:00.5Z", T0 + 500),
        ("2026-03-01 10:00:00Z", T0),  # 5.6 NOTE: a space for readability (see models/timestamps.py)
        ("2026-03-01T11:00:00+01:00", T0),
        ("2026-03-01T05:00:00-05:00", T0),
        ("2026-03-01T15:30:00.250+05:30", T0 + 250),
        ("2026-03-01T10:00:00+00:00", T0),
        ("2026-03-01T10:00:00-00:00", T0),  # RFC 3339 4.3: UTC, local offset unknown
        ("2026-03-02T09:59:00+23:59", T0),
        ("2026-02-28T10:01:00-23:59", T0),
        ("2024-02-29T00:00:00Z", 1709164800000),  # a leap day
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T01:00:00+01:00", 0),
        ("9999-12-31T23:59:59.999Z", MAX_MS),
        ("9999-12-31T23:59:59.999999999Z", MAX_MS),
        (T0, T0),
        (0, 0),
        (MAX_MS, MAX_MS),
    ],
)
def test_both_input_forms_give_epoch_milliseconds(given_value: object, expected_ms: int) -> None:
    assert parse_timestamp(given_value) == expected_ms


LAST_MS_OF_2016 = 1483228799999  # 2016-12-31T23:59:59.999Z


@pytest.mark.parametrize(
    "leap_second",
    [
        "2016-12-31T23:59:60Z",
        "2016-12-31T23:59:60.000Z",
        "2016-12-31T23:59:60.999999Z",
        "2016-12-31t23:59:60z",
        "2017-01-01T00:59:60+01:00",  # the same leap second, written in another zone
        "2016-12-31T18:29:60-05:30",
    ],
)
def test_a_leap_second_is_the_last_millisecond_before_it(leap_second: str) -> None:
    # Epoch milliseconds have no 61st second; this keeps it after 23:59:59 and before midnight.
    assert parse_timestamp(leap_second) == LAST_MS_OF_2016
    assert parse_timestamp("2016-12-31T23:59:59.998Z") < parse_timestamp(leap_second) < parse_timestamp("2017-01-01T00:00:00Z")


@pytest.mark.parametrize(
    "not_leap",
    ["2016-12-30T23:59:60Z", "2016-12-31T23:58:60Z", "2016-12-31T22:59:60Z", "2016-12-31T23:59:60+01:00", "2026-02-27T23:59:60Z", "2016-12-31T23:59:61Z"],
)
def test_a_leap_second_is_only_at_the_end_of_a_utc_month(not_leap: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(not_leap)


@pytest.mark.parametrize("iso_not_rfc", NOT_RFC3339)
def test_iso_8601_forms_that_are_not_rfc_3339_are_rejected(iso_not_rfc: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(iso_not_rfc)


@pytest.mark.parametrize(
    "bad",
    [
        "2026-03-01T10:00:00", "2026-03-01", "yesterday", "", True, False, 1.5, 1.0, None, -1, MAX_MS + 1, [1], b"2026-03-01T10:00:00Z",
        "1969-12-31T23:59:59Z", "1970-01-01T00:59:59+01:00", "9999-12-31T23:59:59-00:01", "0000-01-01T00:00:00Z", "10000-01-01T00:00:00Z",
        "2026-02-29T10:00:00Z", "2026-02-30T10:00:00Z", "2026-04-31T10:00:00Z", "2026-13-01T10:00:00Z", "2026-00-01T10:00:00Z",
        "2026-03-00T10:00:00Z", "2026-03-01T24:00:00Z", "2026-03-01T10:60:00Z", "2026-03-01T10:00:00+24:00",
        "2026-03-01T10:00:00.1234567890123456789", "2026-03-01T10:00:00+01:00Z", "2026-03-01TT10:00:00Z", "2026-03-01T10:00:00ZZ",
    ],
)  # fmt: skip
def test_anything_else_is_rejected(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(bad)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("2026-03-01T10:00:00", "no zone"),
        ("2026-03-01T10:00:00.5", "no zone"),
        ("2026-03-01T10:00Z", "not an RFC 3339 timestamp"),
        ("20260301T100000Z", "not an RFC 3339 timestamp"),
        ("2026-02-30T10:00:00Z", "not a valid date and time"),
        ("2026-03-01T10:00:60Z", "leap second"),
        ("1969-12-31T23:59:59Z", "out of range"),
        (-1, "out of range"),
        (True, "not a boolean"),
        (1.5, "epoch milliseconds"),
    ],
)
def test_a_rejection_says_what_is_wrong(bad: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_timestamp(bad)


def test_a_long_value_is_cut_in_the_message() -> None:
    with pytest.raises(ValueError) as caught:
        parse_timestamp("x" * 100_000)
    assert len(str(caught.value)) < 300


def test_output_is_utc_milliseconds_with_z() -> None:
    assert format_timestamp(1772359200123) == "2026-03-01T10:00:00.123Z"
    assert format_timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert format_timestamp(MAX_MS) == "9999-12-31T23:59:59.999Z"


@given(st.integers(min_value=0, max_value=MAX_MS))
def test_format_then_parse_is_the_identity(ms: int) -> None:
    text = format_timestamp(ms)
    assert parse_timestamp(text) == ms
    assert text == (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@given(rfc3339_instants())
def test_every_rfc_3339_variant_gives_the_instant_it_was_written_from(instant: tuple[str, int]) -> None:
    text, ms = instant  # ms computed from the drawn parts with calendar.timegm, not by the parser
    assert parse_timestamp(text) == ms


# ISO 8601 renderings the old parser (datetime.fromisoformat) accepted and RFC 3339 does not have.
ISO_ONLY = {
    "basic": lambda m: m.strftime("%Y%m%dT%H%M%S") + "Z",
    "week date": lambda m: "{}-W{:02d}-{}".format(*m.isocalendar()) + m.strftime("T%H:%M:%S") + "Z",
    "hours only": lambda m: m.isoformat(timespec="hours") + "Z",
    "no seconds": lambda m: m.isoformat(timespec="minutes") + "Z",
    "comma fraction": lambda m: m.isoformat(timespec="milliseconds").replace(".", ",") + "Z",
    "offset without colon": lambda m: m.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S%z"),
    "offset with seconds": lambda m: m.isoformat(timespec="seconds") + "+01:00:00",
    "offset hours only": lambda m: m.isoformat(timespec="seconds") + "+01",
    "another separator": lambda m: m.isoformat(sep="_", timespec="seconds") + "Z",
}


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 20)), st.sampled_from(sorted(ISO_ONLY)))
def test_iso_8601_forms_outside_rfc_3339_are_rejected_for_any_instant(moment: datetime, form: str) -> None:
    text = ISO_ONLY[form](moment)
    datetime.fromisoformat(text)  # the old parser took it
    with pytest.raises(ValueError):
        parse_timestamp(text)


@given(rfc3339_instants())
def test_the_schema_pattern_accepts_every_rfc_3339_variant(instant: tuple[str, int]) -> None:
    assert re.search(RFC3339_PATTERN, instant[0])


OUT_OF_RANGE = ("2026-03-01T10:00:61Z", "2026-03-01T10:00:60Z")  # in form; their ranges are checked on parsing


@pytest.mark.parametrize("iso_not_rfc", [text for text in NOT_RFC3339 if text not in OUT_OF_RANGE])
def test_the_schema_pattern_rejects_the_forms_outside_rfc_3339(iso_not_rfc: str) -> None:
    # JSON Schema's `$` (ECMA 262) matches only at the very end, unlike Python's: fullmatch here.
    assert re.fullmatch(RFC3339_PATTERN.removeprefix("^").removesuffix("$"), iso_not_rfc) is None
