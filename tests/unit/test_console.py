"""The console's pieces without a worker: sessions, pages (escaped, no inline script), the queue."""

from __future__ import annotations

import asyncio
import re
from html import unescape
from html.parser import HTMLParser

import orjson
import pytest

from models.abuse import AbuseVerdict, EarlierTrial, Signal
from models.inputs import CancellationRequested, Charged, RefundIssued
from models.internal import TrialBegan
from models.outputs import AbuseSummary, ChargeSummary, RefundEligibility, TagEvidence, UsageState
from models.state import AccountState
from policy.account import fold
from policy.explain import billing_timeline, linked_accounts
from streams.console import auth, pages
from streams.console.queue import DecisionQueue, QueueFeed


class Elements(HTMLParser):
    """Every element of a page, as a browser's parser sees it: (tag, attributes)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))

    @classmethod
    def of(cls, html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
        parser = cls()
        parser.feed(html)
        return parser.found


HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
T = 1_772_359_200_000  # 2026-03-01T10:00:00Z
TOKEN, OTHER = b"console-token", b"api-token"


def test_a_session_opens_for_its_token_until_it_expires_and_never_when_tampered() -> None:
    cookie = auth.session_cookie(TOKEN, now_s=1000)
    assert auth.session_valid(cookie, [OTHER, TOKEN], now_s=1000 + auth.SESSION_S - 1)
    assert not auth.session_valid(cookie, [OTHER, TOKEN], now_s=1000 + auth.SESSION_S)
    assert not auth.session_valid(cookie, [OTHER], now_s=1000)  # the token it was issued for is no longer configured
    expiry, _, mac = cookie.partition(".")
    assert not auth.session_valid(f"{int(expiry) + 3600}.{mac}", [TOKEN], now_s=1000)  # a longer life, same signature
    for broken in (None, "", "garbage", f"{expiry}.", f"x.{mac}"):
        assert not auth.session_valid(broken, [TOKEN], now_s=1000)


def test_a_login_takes_only_a_configured_token() -> None:
    assert auth.accepted_token("console-token", [TOKEN, OTHER]) == TOKEN
    assert auth.accepted_token("api-token", [TOKEN, OTHER]) == OTHER
    assert auth.accepted_token("console-token ", [TOKEN]) is None
    assert auth.accepted_token("", []) is None


def account(**facts: object) -> AccountState:
    return AccountState.model_validate({"account_id": "acct-1", **facts})


def test_every_customer_supplied_value_is_escaped_and_the_page_has_no_inline_script_or_style() -> None:
    state = account(
        usage=UsageState(
            account_id="acct-1", usage_started_at=T, detected_at=T, version=1,
            first_evidence=TagEvidence(id=HOSTILE, page_url=HOSTILE, property_id=HOSTILE, received_at=T),
        ),
        charges=(ChargeSummary(charge_id=HOSTILE, reason="trial_conversion", amount_cents=4900, currency="USD", charged_at=T),),
        eligibility=RefundEligibility(
            account_id="acct-1", version=2, decided_at=T, state="discretionary", reasons=("trial_charge_used",),
            charge=None, trial=True, usage_started_at=T, abuse=AbuseSummary(),
        ),
    )
    html = pages.account_page(state)
    assert "<script>alert" not in html and "<img" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 5  # page URL, hit id, property, charge id (charges, timeline)
    elements = Elements.of(html)
    assert [tag for tag, _ in elements if tag in ("script", "img", "iframe", "object")] == []  # no script at all here
    assert [(tag, name) for tag, attrs in elements for name, _ in attrs if name == "style" or name.startswith("on")] == []
    assert "rule 5: the trial's conversion charge, but the account shows usage" in unescape(html)


def test_the_queue_page_loads_its_one_script_from_a_file_and_escapes_the_filter() -> None:
    html = pages.queue_page([], ("eligible", "discretionary"), HOSTILE, revision=3, caught_up=False)
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/console/static/console.js" defer>']
    assert "<script>alert" not in html and 'value="&quot;&gt;&lt;script&gt;' in html


def test_the_timeline_has_every_billing_event_with_its_channel_and_requester() -> None:
    state = AccountState(account_id="acct-1")
    events = [
        TrialBegan(event_id="e1", account_id="acct-1", occurred_at=T, signals=()),
        Charged(type="charged", event_id="e2", account_id="acct-1", occurred_at=T + 3, charge_id="ch-1", amount_cents=4900, currency="USD", reason="trial_conversion"),
        CancellationRequested(type="cancellation_requested", event_id="e3", account_id="acct-1", occurred_at=T + 1, channel="email", requested_by="other"),
        CancellationRequested(type="cancellation_requested", event_id="e4", account_id="acct-1", occurred_at=T + 2, channel="dashboard", requested_by="owner"),
        RefundIssued(type="refund_issued", event_id="e5", account_id="acct-1", occurred_at=T + 4, charge_id="ch-1"),
    ]
    for event in events:
        state = fold(state, event)
    assert [(x.at, x.what, x.details) for x in billing_timeline(state)] == [
        (T, "trial started", ""),
        (T + 1, "cancellation requested", "through email, by someone other than the owner"),
        (T + 2, "cancellation requested", "through dashboard, by the owner"),
        (T + 3, "charged", "ch-1: trial_conversion, 49.00 USD"),
        (T + 4, "refund issued", "for charge ch-1"),
    ]


def test_details_a_previous_version_did_not_keep_are_shown_as_not_recorded() -> None:
    # As a worker of the previous version saved it: the facts the rules read, no details.
    old = account(refunded_charge_ids=["ch-1"], dashboard_cancellations_at=[T], other_cancellation_claims_at=[T + 1])
    assert [(x.at, x.details) for x in billing_timeline(old)] == [
        (T, "in the dashboard, by the owner"),
        (T + 1, "outside the dashboard or by someone else (details not recorded)"),
        (None, "for charge ch-1 (time not recorded)"),
    ]


def test_linked_accounts_come_in_trial_order_with_every_signal_kind_they_share() -> None:
    def verdict(kind: str, *earlier: tuple[str, int]) -> AbuseVerdict:
        trials = tuple(EarlierTrial(account_id=a, trial_started_at=t) for a, t in earlier)
        return AbuseVerdict(account_id="acct-1", signal=Signal(kind=kind, digest=kind), seq=1, linked=True, counted=len(trials), earliest=trials)

    state = account(abuse_verdicts={"d": verdict("device_id", ("acct-b", T + 5), ("acct-a", T)), "c": verdict("card_fingerprint", ("acct-b", T + 5))})
    assert linked_accounts(state) == {"acct-a": ("device_id",), "acct-b": ("card_fingerprint", "device_id")}
    html = pages.account_page(state)
    assert '<a href="/console/accounts/acct-a">acct-a</a>' in html


def decision(account_id: str, state: str, decided_at: int, version: int = 1) -> RefundEligibility:
    return RefundEligibility(
        account_id=account_id, version=version, decided_at=decided_at, state=state, reasons=(), charge=None,
        trial=True, usage_started_at=None, abuse=AbuseSummary(),
    )


def test_the_queue_holds_each_accounts_latest_decision_when_it_is_to_process_or_review() -> None:
    queue = DecisionQueue()
    queue.accept(decision("acct-1", "eligible", T))
    queue.accept(decision("acct-2", "discretionary", T + 1))
    queue.accept(decision("acct-3", "no_charge", T + 2))
    assert [r.account_id for r in queue.entries()] == ["acct-2", "acct-1"] and queue.revision == 2
    queue.accept(decision("acct-1", "discretionary", T + 3, version=2))  # usage began: to review now
    assert [(r.account_id, r.state) for r in queue.entries()] == [("acct-1", "discretionary"), ("acct-2", "discretionary")]
    queue.accept(decision("acct-2", "refunded", T + 4, version=2))
    assert [r.account_id for r in queue.entries()] == ["acct-1"] and queue.revision == 4
    queue.accept(decision("acct-4", "ineligible", T + 5))  # never queued: no change to show
    assert queue.revision == 4
    assert queue.entries(("eligible",)) == [] and [r.account_id for r in queue.entries(text="CCT-1")] == ["acct-1"]


@pytest.mark.parametrize("hostile", [HOSTILE, "acct-1"])
def test_the_queue_data_is_json_the_script_writes_as_text(hostile: str) -> None:
    body = orjson.loads(pages.queue_json([decision("acct-1", "eligible", T)], revision=7, caught_up=True))
    assert body["revision"] == 7 and body["caught_up"] is True and body["rows"][0]["href"] == "/console/accounts/acct-1"
    assert pages.account_href(hostile).startswith("/console/accounts/") and "<" not in pages.account_href(hostile)


class FakeReader:
    """Stands in for reader.EligibilityReader: counts starts and closes, caught up at once."""

    def __init__(self, on_change: object, made: list[FakeReader]) -> None:
        self.started = self.closed = False
        made.append(self)

    def start(self) -> FakeReader:
        self.started = True
        return self

    def wait_until_caught_up(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


def test_the_queue_reads_the_topic_only_once_someone_asks_for_it() -> None:
    async def scenario() -> tuple[list[FakeReader], list[FakeReader], DecisionQueue]:
        made: list[FakeReader] = []
        queue = DecisionQueue()
        feed = QueueFeed(queue, lambda on_change: FakeReader(on_change, made))  # type: ignore[arg-type,return-value]
        await feed.start()
        await asyncio.sleep(0.05)
        before = list(made)
        feed.want()
        feed.want()
        for _ in range(100):
            if queue.caught_up:
                break
            await asyncio.sleep(0.01)
        await feed.stop()
        return before, made, queue

    before, made, queue = asyncio.run(scenario())
    assert before == [] and len(made) == 1 and made[0].started and made[0].closed and queue.caught_up
