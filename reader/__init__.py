"""A client for services that consume `refund.eligibility` (the refund service).

    from reader import EligibilityReader

    with EligibilityReader("kafka:9092", on_change=print) as decisions:
        decisions.wait_until_caught_up(timeout=60)
        record = decisions.get("acct-17")      # from memory; None when unknown
        if record and record.state == "eligible":
            ...

It reads the topic from the beginning and keeps the highest `version` per account, which the
contract guarantees is the account's current decision, whatever duplicates or restarts happen.
"""

from reader.eligibility import EligibilityReader

__all__ = ["EligibilityReader"]
