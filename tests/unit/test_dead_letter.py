import base64

import orjson

from models.codec import encode
from models.errors import InvalidRecord
from streams.dead_letter import RAW_LIMIT, dead_letter


def letter_for(key: bytes | None, value: bytes | None) -> dict:
    record = dead_letter(
        topic="tracking.hits", partition=2, offset=41, key=key, value=value,
        error=InvalidRecord("not_json", "bad"), now=1772359200000,
    )
    return orjson.loads(encode(record))


def test_dead_letter_says_where_and_why() -> None:
    letter = letter_for(b"acct-1", b"nope")
    assert letter == {
        "topic": "tracking.hits",
        "partition": 2,
        "offset": 41,
        "key": "acct-1",
        "error": {"code": "not_json", "message": "bad"},
        "raw": "nope",
        "dead_lettered_at": "2026-03-01T10:00:00.000Z",
    }


def test_bytes_that_are_not_utf8_are_base64() -> None:
    letter = letter_for(b"\xff\x00", b"\xfe\xfa")
    assert base64.b64decode(letter["key"]) == b"\xff\x00"
    assert base64.b64decode(letter["raw"]) == b"\xfe\xfa"


def test_raw_is_cut_to_64_kib() -> None:
    assert len(letter_for(None, b"x" * (RAW_LIMIT * 3))["raw"]) == RAW_LIMIT
    cut_binary = letter_for(None, b"\xff" * (RAW_LIMIT * 3))["raw"]
    assert len(base64.b64decode(cut_binary)) == RAW_LIMIT
    # A multi-byte character split by the cut is dropped, the rest stays text.
    text = letter_for(None, "é".encode() * RAW_LIMIT)["raw"]
    assert len(text.encode()) <= RAW_LIMIT and set(text) == {"é"}


def test_null_key_and_value_stay_null() -> None:
    letter = letter_for(None, None)
    assert letter["key"] is None and letter["raw"] is None
