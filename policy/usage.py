"""The usage stage's core: (the account's recorded usage, observed evidence) -> the usage record.

Usage starts with the earliest evidence by `received_at` and never stops; a later hit changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.internal import UsageObserved, UsageRecorded
from models.outputs import Evidence, UsageState


@dataclass(frozen=True)
class UsageStep:
    recorded: UsageRecorded  # its `usage` is the record to publish
    changed: bool  # whether it differs from the record the evidence was observed against
    # Whether to send the record on to the account's processor: a change, or the evidence that made
    # it read again (a crash may have lost that sending). Later evidence never caused a sending.
    send_on: bool


def evidence_order(evidence: Evidence) -> tuple[int, str, str]:
    """Earliest `received_at` first; source and id only make ties deterministic."""
    return (evidence.received_at, evidence.source, evidence.id)


def observe(recorded: UsageRecorded | None, observed: UsageObserved, now: int) -> UsageStep:
    """Evidence earlier than the recorded first evidence gives the next version, stamped at `now`.

    Any other evidence gives the recorded usage again, unchanged: if a crash lost the publication
    of a change whose record was already saved, reprocessing its input repairs it.
    """
    if recorded is not None and evidence_order(recorded.usage.first_evidence) <= evidence_order(observed.evidence):
        return UsageStep(recorded=recorded, changed=False, send_on=observed.evidence == recorded.usage.first_evidence)
    usage = UsageState(
        account_id=observed.account_id,
        usage_started_at=observed.evidence.received_at,
        first_evidence=observed.evidence,
        detected_at=now,
        version=recorded.usage.version + 1 if recorded is not None else 1,
    )
    earlier = UsageRecorded(account_id=observed.account_id, usage=usage, page_signal=observed.page_signal)
    return UsageStep(recorded=earlier, changed=True, send_on=True)
