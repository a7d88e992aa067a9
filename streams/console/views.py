"""The console's routes on every worker: log in, the queue, an account (from the worker that owns it)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import faust
from faust.types import TableT
from faust.web import Request, Response, View
from yarl import URL

from models.errors import InvalidRecord
from models.internal import ACCOUNT_STATE, decode_internal
from models.outputs import EligibilityState
from reader import EligibilityReader
from streams.console import auth, pages
from streams.console.queue import QUEUED, DecisionQueue, QueueFeed
from streams.kafka_security import KafkaSecurity
from streams.settings import Settings
from streams.views import ACCOUNT_ID, OwnerUnreachable, fetch_from_owner, owner_of

STATIC = {
    "console.css": "text/css",
    "console.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
STATIC_DIR = Path(__file__).with_name("static")
# Only the console's own files run or style a page; nothing from elsewhere, nothing inline.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
CHOSEN_STATES: dict[str, tuple[EligibilityState, ...]] = {"": QUEUED, "eligible": ("eligible",), "discretionary": ("discretionary",)}


def console_tokens(settings: Settings) -> tuple[bytes, ...]:
    return tuple(t.get_secret_value().encode() for t in (settings.console_token, settings.api_token) if t is not None)


def install_console(app: faust.App, settings: Settings, accounts: TableT, eligibility_topic: str, bootstrap_servers: str) -> None:
    """The console's pages, and the reader of the eligibility topic behind its queue where someone
    can log in to see it (a token is configured)."""
    queue = DecisionQueue()
    security = KafkaSecurity.from_settings(settings).kafka_python_config()
    feed = QueueFeed(
        queue, lambda on_change: EligibilityReader(bootstrap_servers, eligibility_topic, on_change, **security), loop=app.loop
    )
    if console_tokens(settings):
        app.service(cast(Any, feed))
    register_console(app, settings, accounts, queue, feed)


def register_console(app: faust.App, settings: Settings, accounts: TableT, queue: DecisionQueue, feed: QueueFeed) -> None:
    tokens = console_tokens(settings)
    static = {name: (STATIC_DIR / name).read_bytes() for name in STATIC}
    here = URL(app.conf.canonical_url)

    def signed_in(request: Request) -> bool:
        return auth.session_valid(request.cookies.get(auth.COOKIE), tokens, int(time.time()))

    class ConsoleView(View):
        def page(self, html: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
            return self.bytes(html.encode(), content_type="text/html", status=status, headers={**SECURITY_HEADERS, **(headers or {})})

        def see_other(self, location: str, headers: Mapping[str, str] | None = None) -> Response:
            return self.bytes(b"", status=303, headers={**SECURITY_HEADERS, "Location": location, **(headers or {})})

        def to_login(self) -> Response:
            return self.see_other("/console/login")

    @app.page("/console/login")
    class Login(ConsoleView):
        async def get(self, request: Request) -> Response:
            return self.see_other("/console") if signed_in(request) else self.page(pages.login_page())

        async def post(self, request: Request) -> Response:
            form = await request.post()
            token = auth.accepted_token(str(form.get("token", "")), tokens)
            if token is None:
                return self.page(pages.login_page("That token opens nothing here."), status=401)
            cookie = f"{auth.COOKIE}={auth.session_cookie(token, int(time.time()))}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={auth.SESSION_S}"
            return self.see_other("/console", {"Set-Cookie": cookie})

    @app.page("/console/logout")
    class Logout(ConsoleView):
        async def post(self, request: Request) -> Response:
            return self.see_other("/console/login", {"Set-Cookie": f"{auth.COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0"})

    @app.page("/console")
    class Queue(ConsoleView):
        async def get(self, request: Request) -> Response:
            if not signed_in(request):
                return self.to_login()
            feed.want()
            states = CHOSEN_STATES.get(request.query.get("state", ""), QUEUED)
            text = request.query.get("q", "")[:64]
            return self.page(pages.queue_page(queue.entries(states, text), states, text, queue.revision, queue.caught_up))

    @app.page("/console/queue.json")
    class QueueData(ConsoleView):
        async def get(self, request: Request) -> Response:
            if not signed_in(request):
                return self.bytes(b'{"error":"log in at /console/login"}', content_type="application/json", status=401, headers=SECURITY_HEADERS)
            feed.want()
            states = CHOSEN_STATES.get(request.query.get("state", ""), QUEUED)
            revision = queue.revision  # read before the entries: a change in between shows at the next poll
            body = pages.queue_json(queue.entries(states, request.query.get("q", "")[:64]), revision, queue.caught_up)
            return self.bytes(body, content_type="application/json", headers=SECURITY_HEADERS)

    @app.page("/console/accounts")
    class Search(ConsoleView):
        async def get(self, request: Request) -> Response:
            if not signed_in(request):
                return self.to_login()
            account_id = request.query.get("id", "").strip()
            if not ACCOUNT_ID.match(account_id):
                return self.page(pages.message_page("Not an account id", "An account id is 1 to 64 letters, digits and _ . : -."), status=404)
            return self.see_other(pages.account_href(account_id))

    @app.page("/console/accounts/{account_id}")
    class Account(ConsoleView):
        async def get(self, request: Request, account_id: str) -> Response:
            if not signed_in(request):
                return self.to_login()
            if not ACCOUNT_ID.match(account_id):
                return self.page(pages.message_page("Not an account id", "An account id is 1 to 64 letters, digits and _ . : -."), status=404)
            try:
                owner = owner_of(app, accounts, account_id)
            except KeyError:
                return self.page(pages.message_page("Not ready", "The accounts are not assigned to workers yet; reload shortly."), status=503)
            if (owner.host, owner.port) != (here.host, here.port):
                try:
                    status, content_type, body = await fetch_from_owner(app, owner, pages.account_href(account_id), {"Cookie": request.headers.get("Cookie", "")})
                except OwnerUnreachable as error:
                    return self.page(pages.message_page("Not available", str(error)), status=503)
                return self.bytes(body, content_type=content_type, status=status, headers=SECURITY_HEADERS)
            stored = accounts.data.get(account_id.encode())
            if stored is None:
                return self.page(pages.message_page("Unknown account", f"The detector has seen nothing of account {account_id}."), status=404)
            try:
                account = decode_internal(ACCOUNT_STATE, stored, f"stored state of {account_id}")
            except InvalidRecord as error:  # written by another version during a rolling upgrade
                return self.page(pages.message_page("Not readable yet", str(error)), status=503)
            return self.page(pages.account_page(account))

    @app.page("/console/static/{name}")
    class Static(ConsoleView):
        async def get(self, request: Request, name: str) -> Response:
            if name not in static:
                return self.notfound("no such file")
            headers = {**SECURITY_HEADERS, "Cache-Control": "max-age=300"}
            return self.bytes(static[name], content_type=STATIC[name], headers=headers)
