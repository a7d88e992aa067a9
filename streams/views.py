"""HTTP on every worker: account lookups (routed to the worker holding the account), health, metrics."""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable, Mapping

import aiohttp
import faust
import orjson
from faust.types import TableT
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from yarl import URL

from models.errors import InvalidRecord
from models.internal import internal_object
from streams.merged_metrics import merged_exposition
from streams.metrics import Metrics
from streams.settings import Settings
from streams.usage_process import UsageProcess

ACCOUNT_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
FORWARD_TIMEOUT = aiohttp.ClientTimeout(total=10)  # a lookup routed to a worker that does not answer


def account_document(stored: bytes, account_id: str) -> bytes:
    """The account's published records, as the refund service reads them; `InvalidRecord` for a
    stored state this worker cannot read (another schema_version, during a rolling upgrade).

    The state keeps each record as published (`usage`, `eligibility`: the same JSON), so they are
    copied, not decoded: validating and re-encoding the whole state (charges, signals, verdicts)
    cost a lookup more than everything else the worker does for it."""
    what = f"stored state of {account_id}"
    state = internal_object(stored, what)
    usage, eligibility = state.get("usage"), state.get("eligibility")
    if not isinstance(state.get("account_id"), str) or not all(isinstance(r, dict | None) for r in (usage, eligibility)):
        raise InvalidRecord("unreadable_internal", f"{what}: no account_id, or usage or eligibility not a record")
    return orjson.dumps({"account_id": state["account_id"], "usage": usage, "eligibility": eligibility})


class OwnerUnreachable(Exception):
    """The worker holding an account did not answer (it left or is restarting: the assignment moves on shortly)."""


def owner_of(app: faust.App, accounts: TableT, account_id: str) -> URL:
    """The URL of the worker holding `account_id` (Faust's table routing); KeyError before any assignment."""
    return app.router.key_store(accounts.name, account_id)


async def fetch_from_owner(app: faust.App, owner: URL, path: str, headers: Mapping[str, str]) -> tuple[int, str, bytes]:
    """The owner's answer to GET `path` (status, content type, body), passed back as it came. Faust's
    `table_route` makes the same hop but passes every header on and decodes and re-encodes the body:
    a quarter more of this worker's CPU."""
    try:
        async with app.http_client.get(owner.with_path(path), headers=headers, timeout=FORWARD_TIMEOUT) as response:
            return response.status, response.content_type, await response.read()
    except (aiohttp.ClientError, TimeoutError) as error:
        raise OwnerUnreachable(f"the worker holding this account ({owner}) did not answer: {error!r}") from None


def bearer_token_matches(request: Request, expected: bytes | None) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if expected is None or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), expected)


Readiness = Callable[[], tuple[bool, dict[str, object]]]


def register_views(
    app: faust.App, settings: Settings, accounts: TableT, metrics: Metrics, readiness: Readiness, usage: UsageProcess
) -> None:
    """The worker's HTTP: accounts, and health and metrics that include its usage process's."""
    token = settings.api_token.get_secret_value().encode() if settings.api_token else None
    here = URL(app.conf.canonical_url)

    @app.page("/accounts/{account_id}")
    class AccountView(View):
        async def get(self, request: Request, account_id: str) -> Response:
            if not bearer_token_matches(request, token):
                return self.error(401, "a valid 'Authorization: Bearer <token>' header is required")
            if not ACCOUNT_ID.match(account_id):
                return self.notfound(f"unknown account {account_id[:64]!r}")
            try:
                owner = owner_of(app, accounts, account_id)
            except KeyError:  # no assignment yet
                return self.error(503, "the accounts are not assigned to workers yet; ask again shortly")
            if (owner.host, owner.port) != (here.host, here.port):
                try:
                    status, content_type, body = await fetch_from_owner(
                        app, owner, f"/accounts/{account_id}", {"Authorization": request.headers["Authorization"]}
                    )
                except OwnerUnreachable as error:
                    return self.error(503, str(error))
                return self.bytes(body, content_type=content_type, status=status)
            stored = accounts.data.get(account_id.encode())  # the store: one read (the table's get reads twice)
            if stored is None:
                return self.notfound(f"unknown account {account_id!r}")
            try:
                document = account_document(stored, account_id)
            except InvalidRecord as error:  # never a guess: the caller may ask again after the upgrade
                return self.error(503, str(error))
            return self.bytes(document, content_type="application/json")

    async def exposition() -> bytes:
        return merged_exposition(metrics.registry, await usage.metrics_text())

    register_health_and_metrics(app, readiness, exposition)


def register_usage_views(app: faust.App, metrics: Metrics, readiness: Readiness) -> None:
    """The usage process's HTTP, for its worker only (on a Unix socket): health and metrics."""

    async def exposition() -> bytes:
        return generate_latest(metrics.registry)

    register_health_and_metrics(app, readiness, exposition)


def register_health_and_metrics(app: faust.App, readiness: Readiness, exposition: Callable[[], Awaitable[bytes]]) -> None:
    @app.page("/healthz")
    class HealthView(View):
        async def get(self, request: Request) -> Response:
            ready, body = readiness()
            return self.json(body, status=200 if ready else 503)

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(await exposition(), content_type=CONTENT_TYPE_LATEST.split(";")[0])
