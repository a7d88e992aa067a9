"""Input records to evidence of usage and account events: the only place raw identities are seen, and hashed."""

from __future__ import annotations

from dataclasses import dataclass, field

from models.inputs import BillingEvent, ConversionApiEvent, TrackingHit, TrialStarted
from models.internal import AccountEvent, TrialBegan, UsageObserved
from models.outputs import CapiEvidence, TagEvidence
from policy.abuse import NeverEvidence, identity_signals, signal


@dataclass(frozen=True)
class Translator:
    signal_key: bytes
    # Applied to what arrives from now on; accounts already judged keep their claims until replayed.
    never_evidence: NeverEvidence = field(default_factory=NeverEvidence)

    def hit(self, hit: TrackingHit) -> UsageObserved:
        evidence = TagEvidence(id=hit.hit_id, property_id=hit.property_id, page_url=hit.page_url, received_at=hit.received_at)
        page_signal = signal(self.signal_key, "website", hit.page_url, self.never_evidence)
        return UsageObserved(account_id=hit.account_id, evidence=evidence, page_signal=page_signal)

    def capi(self, event: ConversionApiEvent) -> UsageObserved:
        evidence = CapiEvidence(id=event.event_id, integration=event.integration, received_at=event.received_at)
        return UsageObserved(account_id=event.account_id, evidence=evidence)

    def billing(self, event: BillingEvent) -> AccountEvent:
        if isinstance(event, TrialStarted):
            return TrialBegan(
                event_id=event.event_id,
                account_id=event.account_id,
                occurred_at=event.occurred_at,
                signals=identity_signals(self.signal_key, event.identity, self.never_evidence),
            )
        return event
