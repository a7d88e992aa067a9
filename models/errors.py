"""Every error the detector raises on purpose derives from one root:

    UsageDetectorError
    ├── InvalidRecord        an input record that cannot be used; dead-lettered with its `code`
    │                        (also a record of our own internal topics or tables that this
    │                        worker cannot read: malformed, or of another schema version)
    └── ConfigurationError   settings that cannot work; the worker refuses to start
"""

from __future__ import annotations

from typing import Literal

DeadLetterCode = Literal[
    "empty_value",         # null value (tombstone) or zero bytes
    "too_large",           # value over the configured size limit
    "invalid_encoding",    # not UTF-8
    "not_json",            # not JSON (including NaN and nesting deeper than 1024)
    "not_an_object",       # JSON, but not an object
    "missing_field",       # a required field is absent or null
    "invalid_field",       # a field of the wrong type or out of range, including timestamps
    "invalid_account_id",  # account_id absent of form: 1-64 of A-Z a-z 0-9 _ . : -
    "unknown_type",        # billing `type` the contract does not define
    "unprocessable",       # valid as far as checked, but processing it failed (a bug: see the log)
    # Records of the detector's own internal topics and tables (models.internal.SCHEMA_VERSION):
    "unreadable_internal",         # malformed: not JSON, not an object, or not the record it should be
    "unsupported_schema_version",  # written by a version of the detector this worker cannot read
]


class UsageDetectorError(Exception):
    """Root of the detector's own errors."""


class InvalidRecord(UsageDetectorError):
    def __init__(self, code: DeadLetterCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code: DeadLetterCode = code
        self.message = message


class ConfigurationError(UsageDetectorError):
    """Raised before anything starts; the message names the setting and what to change."""
