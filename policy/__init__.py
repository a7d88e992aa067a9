"""The refund policy as pure functions: no Faust, no Kafka, no clock, no I/O.

`refund.decide` holds the contract's decision rules in their order; `usage.observe` folds evidence
into an account's usage record; `account.apply` folds one event into an account's state and says
which records to publish.
"""

from policy.account import Step, apply
from policy.refund import decide

__all__ = ["Step", "apply", "decide"]
