"""HTTP on every worker, over real HTTP against two running workers sharing the accounts."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.conftest import Detector
from tests.support.records import charge, trial
from tests.support.worker import TOKEN
from tools.supervisor import HTTP

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_any_worker_answers_for_any_account(two_workers: Detector) -> None:
    accounts = [f"http-{uuid.uuid4().hex[:10]}" for _ in range(16)]  # spread over both workers
    for account in accounts:
        two_workers.producer.send(two_workers.topics.billing, trial(account, "2026-03-01T10:00:00Z"), key=account)
        two_workers.producer.send(two_workers.topics.billing, charge(account, "2026-03-15T10:00:00Z", "c1"), key=account)
    two_workers.producer.flush()
    two_workers.tail.wait_for(
        "every account decided",
        lambda: all(
            any(r.value["state"] == "eligible" for r in two_workers.tail.records(two_workers.topics.eligibility, a))
            for a in accounts
        ),
    )
    for account in accounts:
        answers = [HTTP.get(f"{w.url}/accounts/{account}", headers=AUTH, timeout=10) for w in two_workers.workers]
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        bodies = [a.json() for a in answers]
        assert bodies[0] == bodies[1]  # one answered from its table, the other routed to it
        assert bodies[0]["eligibility"]["state"] == "eligible" and bodies[0]["account_id"] == account


def test_every_worker_refuses_without_a_valid_token_and_knows_unknown_accounts(two_workers: Detector) -> None:
    for worker in two_workers.workers:
        url = f"{worker.url}/accounts/someone"
        # Faust's own table pages would hand out any account's stored state without a token.
        for page in ("/table/", "/table/accounts/", "/table/accounts/someone/"):
            assert HTTP.get(f"{worker.url}{page}").status_code == 404, page
        assert HTTP.get(url).status_code == 401
        assert HTTP.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert HTTP.get(url, headers={"Authorization": TOKEN}).status_code == 401  # no scheme
        assert HTTP.get(f"{worker.url}/accounts/{uuid.uuid4().hex}", headers=AUTH).status_code == 404
        assert HTTP.get(f"{worker.url}/accounts/not%20valid", headers=AUTH).status_code == 404
        health = HTTP.get(f"{worker.url}/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
