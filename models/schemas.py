"""JSON Schemas of the input records, for the teams that publish them, and of the refund
decisions, for the services that read them.

`python -m models.schemas` rewrites `schemas/`; a test fails when the files are stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import TypeAdapter

from models.inputs import BillingEvent, ConversionApiEvent, TrackingHit
from models.outputs import RefundEligibility

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

# file name: (model, title, mode): inputs as the detector accepts them, outputs as it writes them
SCHEMAS: dict[str, tuple[Any, str, Literal["validation", "serialization"]]] = {
    "tracking-hit.schema.json": (TrackingHit, "tracking.hits: one Tracking Tag hit", "validation"),
    "capi-event.schema.json": (ConversionApiEvent, "capi.events: one Conversion API event", "validation"),
    "billing-event.schema.json": (BillingEvent, "billing.events: one account lifecycle event", "validation"),
    "refund-eligibility.schema.json": (RefundEligibility, "refund.eligibility: one account's refund decision", "serialization"),
}


def render() -> dict[str, str]:
    rendered = {}
    for filename, (model, title, mode) in SCHEMAS.items():
        schema = TypeAdapter(model).json_schema(mode=mode)
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, **schema}
        rendered[filename] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return rendered


def main() -> int:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for filename, text in render().items():
        (SCHEMA_DIR / filename).write_text(text)
        print(f"wrote {SCHEMA_DIR / filename}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
