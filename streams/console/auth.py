"""Who may see the console: a session cookie signed with a configured token, checked by any worker.

Logging in exchanges a token (the console token, or the API token) for a cookie that holds its
expiry and an HMAC of it under that token. Any worker holding the same configuration verifies it
with no shared session store, so a page forwarded to the worker that owns an account is checked
there too. The cookie is HttpOnly and SameSite=Strict: scripts cannot read it and other sites
cannot send it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

COOKIE = "usage_detector_console"
SESSION_S = 12 * 3600  # a working day; then the token is asked again


def _mac(token: bytes, expires_at: int) -> str:
    return hmac.new(token, f"usage-detector-console:{expires_at}".encode(), hashlib.sha256).hexdigest()


def accepted_token(given: str, tokens: Sequence[bytes]) -> bytes | None:
    """The configured token `given` is, compared in constant time; None when it is none of them."""
    matches = [token for token in tokens if hmac.compare_digest(given.encode(), token)]
    return matches[0] if matches else None


def session_cookie(token: bytes, now_s: int) -> str:
    expires_at = now_s + SESSION_S
    return f"{expires_at}.{_mac(token, expires_at)}"


def session_valid(cookie: str | None, tokens: Sequence[bytes], now_s: int) -> bool:
    """Whether `cookie` was issued for one of `tokens` and has not expired."""
    expiry, _, mac = (cookie or "").partition(".")
    if not expiry.isdigit() or int(expiry) <= now_s:
        return False
    return any(hmac.compare_digest(mac, _mac(token, int(expiry))) for token in tokens)
