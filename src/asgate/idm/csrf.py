"""Login CSRF (issue 8 item 11): may this POST of the sign-in form be taken? Pure functions.

A sign-in form posted from another site would sign the victim's browser in as the attacker (or
spend a handle the attacker fetched). The POST is taken when the browser says it comes from the
IdM's own origin (``Sec-Fetch-Site: same-origin``, or an ``Origin`` / ``Referer`` of an own
origin: OWASP CSRF cheat sheet, "verifying origin with standard headers"), or, when it says
nothing (a non-browser client, an old browser), when it carries the form's token.

The form token binds the page to the browser that loaded it: the page sets a random browser key
in an HttpOnly, SameSite=Strict cookie and puts HMAC-SHA256(browser key, handle) in the form. A
cross-site POST does not carry the cookie (SameSite=Strict), and an attacker who fetched a
handle of their own cannot compute the token for the victim's key. A browser signal that the
POST is cross-site refuses it whatever it carries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

COOKIE = "asgate_login"
FIELD = "csrf"
_KEY = re.compile(r"[A-Za-z0-9_-]{43}")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def browser_key(cookie: str | None) -> str:
    """The browser's key: the one its cookie carries when well-formed, else a new one."""
    return cookie if cookie is not None and _KEY.fullmatch(cookie) else secrets.token_urlsafe(32)


def form_token(key: str, handle: str) -> str:
    """HMAC-SHA256 of the request handle under the browser key (RFC 2104), base64url."""
    digest = hmac.new(key.encode(), handle.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def origin_of(url: str) -> str | None:
    """RFC 6454 serialization of a URL's origin (scheme://host[:port], default port left out)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    shown = f":{port}" if port is not None and port != _DEFAULT_PORTS[parts.scheme] else ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname.lower()
    return f"{parts.scheme}://{host}{shown}"


def refusal(
    *,
    fetch_site: str | None,
    origin: str | None,
    referer: str | None,
    own_origins: Iterable[str | None],
    cookie: str | None,
    handle: str,
    token: str,
) -> str | None:
    """Why the sign-in POST is refused, or None to take it."""
    own = {o for o in own_origins if o}
    if fetch_site is not None and fetch_site.lower() in ("cross-site", "same-site"):
        return "the sign-in form was posted from another site"
    # "null" is what sandboxed frames and some privacy settings send: it proves nothing either way.
    claimed = origin if origin and origin != "null" else referer
    if claimed:
        if origin_of(claimed) not in own:
            return "the sign-in form was posted from another site"
        return None
    if fetch_site is not None and fetch_site.lower() == "same-origin":
        return None
    if cookie is None or not _KEY.fullmatch(cookie) or not token:
        return "the sign-in form must be posted from the sign-in page (its security token is missing)"
    if not hmac.compare_digest(form_token(cookie, handle), token):
        return "the sign-in form's security token does not match this browser"
    return None
