"""A native application (RFC 8252) against a live asgate: its registration, its authorization
request, a loopback listener, the code redeemed with PKCE, and what a browser page shows. Shared by
tests/idm/test_login_browser.py and the screenshot script (tests/idm/screenshots.py)."""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from asgate.idm.oidc import s256
from tests.live import LiveServer

CLIENT = "console-1"
LONG_NAME_CLIENT = "console-2"
# A name with no place to break: the page must wrap it, never scroll sideways.
LONG_NAME = "Dispatch-console-of-the-north-eastern-region-operations-centre-2026"
PRIVATE_USE = "com.example.console:/oauth2redirect"  # RFC 8252 7.1
CLAIMED_HTTPS = "https://console.example/oauth2redirect"  # RFC 8252 7.2
LOOPBACK = "http://127.0.0.1/cb"  # RFC 8252 7.3: the listener's port is its own
LOOPBACK_V6 = "http://[::1]/cb"
USER, PASSWORD = "alice", "alice-password"


def provision(server: LiveServer) -> None:
    """What the administrator does: the console's registration (every redirect kind) and a user."""
    redirects = [
        a for uri in (PRIVATE_USE, CLAIMED_HTTPS, LOOPBACK, LOOPBACK_V6) for a in ("--redirect-uri", uri)
    ]
    scope = ["--public", "--scope", "3gpp:mc:ptt_service"]
    server.cli("clients", "add", CLIENT, *scope, "--name", "Dispatch console", *redirects)
    server.cli("clients", "add", LONG_NAME_CLIENT, *scope, "--name", LONG_NAME, *redirects)
    server.cli("users", "add", USER, "--mcptt-id", "alice@mc.example", "--password", PASSWORD)


@dataclass
class Request:
    """One authorization request (RFC 6749 4.1.1 with PKCE, RFC 7636), as AppAuth builds it."""

    issuer: str
    redirect_uri: str
    client_id: str = CLIENT
    state: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    @property
    def url(self) -> str:
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": "openid 3gpp:mc:ptt_service",
            "state": self.state,
            "code_challenge": s256(self.verifier),
            "code_challenge_method": "S256",
        }
        return f"{self.issuer}/oauth2/authorize?{urlencode(params)}"

    def redeem(self, code: str) -> httpx.Response:
        """The token request a public client sends (RFC 6749 4.1.3, RFC 7636 4.5)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": self.verifier,
            "client_id": self.client_id,
        }
        return httpx.post(f"{self.issuer}/oauth2/token", data=form, timeout=10.0)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


class _V6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


@contextmanager
def loopback_listener(host: str = "127.0.0.1") -> Iterator[Listener]:
    """RFC 8252 7.3: the one-shot HTTP listener a native app opens on an ephemeral loopback port."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            seen.append(self.path)
            body = b"<!doctype html><title>Signed in</title><p>You can close this window."
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
            pass

    server_class = _V6Server if ":" in host else ThreadingHTTPServer
    server = server_class((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Listener(host, int(server.server_address[1]), seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class Listener:
    host: str
    port: int
    seen: list[str]

    def redirect_uri(self, path: str = "/cb") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"
