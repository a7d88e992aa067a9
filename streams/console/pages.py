"""The console's HTML, rendered on the worker: every value escaped, no inline script or style.

Everything shown comes from customers' websites and servers (page URLs, ids, integrations) or
from billing: it is text, escaped with `html.escape`, and never a link except to the console's own
pages. The one script is a static file (`static/console.js`), which the Content-Security-Policy
of every page allows alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from urllib.parse import quote, urlencode

import orjson

from models.outputs import ChargeSummary, EligibilityState, RefundEligibility
from models.state import AccountState
from models.timestamps import format_timestamp
from policy.explain import RULES, billing_timeline, linked_accounts
from policy.refund import charge_before, latest_charge
from streams.console.queue import QUEUED

STATE_WORDS: dict[EligibilityState, str] = {
    "eligible": "eligible: refund to process",
    "discretionary": "discretionary: to review",
    "ineligible": "ineligible",
    "refunded": "refunded",
    "no_charge": "no charge yet",
}


def e(value: object) -> str:
    return escape(str(value), quote=True)


def account_href(account_id: str) -> str:
    return "/console/accounts/" + quote(account_id, safe="")


def when(ms: int | None) -> str:
    return "not recorded" if ms is None else format_timestamp(ms)


def page(title: str, body: str, *, signed_in: bool = True, script: bool = False) -> str:
    nav = (
        '<nav aria-label="console"><a href="/console">Queue</a>'
        '<form class="search" method="get" action="/console/accounts" role="search">'
        '<label for="account-search">Account id</label>'
        '<input id="account-search" name="id" required maxlength="64" autocomplete="off" spellcheck="false">'
        '<button type="submit">Look up</button></form>'
        '<form method="post" action="/console/logout"><button type="submit">Log out</button></form></nav>'
        if signed_in
        else ""
    )
    js = '<script src="/console/static/console.js" defer></script>' if script else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{e(title)} · usage detector</title><link rel="stylesheet" href="/console/static/console.css"><link rel="icon" href="/console/static/favicon.svg">{js}</head>'
        f'<body><header><p class="brand">Usage detector · refund console</p>{nav}</header>'
        f'<main id="main">{body}</main></body></html>'
    )


def login_page(error: str | None = None) -> str:
    problem = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
    return page(
        "Log in",
        '<h1>Log in</h1><p>The console shows accounts to the billing team. Log in with the console token.</p>'
        f'{problem}<form class="login" method="post" action="/console/login">'
        '<label for="token">Token</label>'
        '<input id="token" name="token" type="password" required autocomplete="current-password" autofocus>'
        '<button type="submit">Log in</button></form>',
        signed_in=False,
    )


def message_page(title: str, text: str) -> str:
    return page(title, f"<h1>{e(title)}</h1><p>{e(text)}</p>")


def _badge(state: EligibilityState) -> str:
    return f'<span class="state state-{e(state)}">{e(STATE_WORDS[state])}</span>'


def _charge_rows(account: AccountState) -> str:
    latest = latest_charge(account.charges)
    if latest is None:
        return "<p>No charge.</p>"
    rows: list[tuple[str, ChargeSummary]] = [("latest charge", latest)]
    if (before := charge_before(account.charges, latest)) is not None:
        rows.append(("the one before", before))
    cells = "".join(
        f"<tr><th scope=\"row\">{label}</th><td>{e(c.charge_id)}</td><td>{e(c.reason)}</td>"
        f"<td>{c.amount_cents / 100:.2f} {e(c.currency)}</td><td>{when(c.charged_at)}</td>"
        f"<td>{'refunded' if c.charge_id in account.refunded_charge_ids else ''}</td></tr>"
        for label, c in rows
    )
    return (
        '<div class="scroll"><table><thead><tr><th scope="col"></th><th scope="col">charge</th><th scope="col">reason</th>'
        f'<th scope="col">amount</th><th scope="col">charged at</th><th scope="col"></th></tr></thead><tbody>{cells}</tbody></table></div>'
    )


def _usage(account: AccountState) -> str:
    evidence = account.first_evidence
    if evidence is None:
        return "<p>No usage seen: no Tracking Tag hit, no Conversion API event.</p>"
    if evidence.source == "tracking_tag":
        source, where = "Tracking Tag hit", ("page URL", evidence.page_url)
    else:
        source, where = "Conversion API event", ("integration", evidence.integration)
    facts = [("started at", when(evidence.received_at)), ("first evidence", source), ("id", evidence.id), where]
    if evidence.property_id is not None:
        facts.append(("property", evidence.property_id))
    if account.usage is not None:
        facts.append(("usage record", f"version {account.usage.version}, detected {when(account.usage.detected_at)}"))
    return "<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{e(v) if v is not None else 'none'}</dd>" for k, v in facts) + "</dl>"


def _timeline(account: AccountState) -> str:
    entries = billing_timeline(account)
    if not entries:
        return "<p>No billing event.</p>"
    rows = "".join(f"<tr><td class=\"when\">{when(x.at)}</td><td>{e(x.what)}</td><td>{e(x.details)}</td></tr>" for x in entries)
    return (
        '<div class="scroll"><table><thead><tr><th scope="col">when</th><th scope="col">what</th><th scope="col">details</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _abuse(record: RefundEligibility | None, account: AccountState) -> str:
    linked = linked_accounts(account)
    if not linked:
        return "<p>No earlier trial shares a signal with this account.</p>"
    items = "".join(
        f'<li><a href="{e(account_href(other))}">{e(other)}</a> <span class="kinds">shares {e(", ".join(kinds))}</span></li>'
        for other, kinds in linked.items()
    )
    total = record.abuse.linked_count if record is not None else len(linked)
    more = f"<p>{total - len(linked)} more linked accounts are counted, not listed.</p>" if total > len(linked) else ""
    return f"<p>Earlier trials on the same identity signals:</p><ul class=\"linked\">{items}</ul>{more}"


def account_page(account: AccountState) -> str:
    record = account.eligibility
    if record is None:
        decision = "<p>Nothing decided yet.</p>"
    else:
        rules = [RULES[r] for r in record.reasons] or ["rule 3: there is no charge yet"]
        decision = (
            f"<p>{_badge(record.state)}</p><ul>{''.join(f'<li>because {e(r)}</li>' for r in rules)}</ul>"
            f'<p class="meta">version {record.version}, decided {when(record.decided_at)}, policy {e(record.policy_version)}</p>'
        )
    sections = [
        ("Decision", decision),
        ("Charges", _charge_rows(account)),
        ("Usage", _usage(account)),
        ("Billing timeline", _timeline(account)),
        ("Abuse", _abuse(record, account)),
    ]
    body = f"<h1>Account <span class=\"id\">{e(account.account_id)}</span></h1>" + "".join(
        f'<section aria-labelledby="s{i}"><h2 id="s{i}">{title}</h2>{html}</section>' for i, (title, html) in enumerate(sections)
    )
    return page(f"Account {account.account_id}", body)


def queue_row(record: RefundEligibility) -> dict[str, object]:
    """One row of the queue, as the page and its script show it (the script writes text, never HTML)."""
    charge = record.charge
    return {
        "account_id": record.account_id,
        "href": account_href(record.account_id),
        "state": record.state,
        "state_words": STATE_WORDS[record.state],
        "reasons": "; ".join(RULES[r] for r in record.reasons),
        "charge": f"{charge.charge_id}, {charge.amount_cents / 100:.2f} {charge.currency}" if charge is not None else "",
        "decided_at": when(record.decided_at),
        "version": record.version,
    }


READING = "still reading refund.eligibility: more may appear"


def queue_json(records: Iterable[RefundEligibility], revision: int, caught_up: bool) -> bytes:
    return orjson.dumps({"revision": revision, "caught_up": caught_up, "rows": [queue_row(r) for r in records]})


QUEUE_COLUMNS = ("account", "decision", "because", "charge", "decided at", "version")


def queue_page(
    records: list[RefundEligibility], states: tuple[EligibilityState, ...], text: str, revision: int, caught_up: bool
) -> str:
    options = "".join(
        f'<option value="{e(value)}"{" selected" if chosen == states else ""}>{e(label)}</option>'
        for value, label, chosen in (
            ("", "eligible and discretionary", QUEUED),
            ("eligible", "eligible: refunds to process", ("eligible",)),
            ("discretionary", "discretionary: to review", ("discretionary",)),
        )
    )
    rows = "".join(
        f'<tr><td><a href="{e(r["href"])}">{e(r["account_id"])}</a></td>'
        f'<td><span class="state state-{e(r["state"])}">{e(r["state_words"])}</span></td><td>{e(r["reasons"])}</td>'
        f'<td>{e(r["charge"])}</td><td class="when">{e(r["decided_at"])}</td><td>{e(r["version"])}</td></tr>'
        for r in map(queue_row, records)
    )
    head = "".join(f'<th scope="col">{c}</th>' for c in QUEUE_COLUMNS)
    query = urlencode({"state": states[0] if len(states) == 1 else "", "q": text})
    return page(
        "Queue",
        '<h1>Queue</h1><p>Accounts whose latest decision is a refund to process or a case to review, newest first.</p>'
        f'<form class="filter" method="get" action="/console"><label for="state">Decision</label><select id="state" name="state">{options}</select>'
        f'<label for="q">Account id contains</label><input id="q" name="q" value="{e(text)}" maxlength="64" autocomplete="off">'
        '<button type="submit">Filter</button></form>'
        f'<p id="queue-status" role="status" data-revision="{revision}" data-caught-up="{str(caught_up).lower()}"'
        f' data-reading="{READING}" data-source="/console/queue.json?{e(query)}">'
        f'{len(records)} accounts{"" if caught_up else f" ({READING})"}</p>'
        f'<div class="scroll"><table id="queue"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>',
        script=True,
    )
