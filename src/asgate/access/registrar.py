"""An access server apart from the registry registers itself there (issue 10 §2): ``PUT
/mcx-registry-sync/v1/access-servers/{sasId}`` with the URL where it takes CSC-15, again every
``sas_heartbeat_interval`` (at most a third of the registry's timeout, which the answer says) as
its heartbeat, and ``DELETE`` on a clean stop. The registry pushes to every live one.

It authenticates as ``asgate-access-{sasId}`` (a token signed with the deployment's shared keys),
the client that owns the ID at the registry. While the registry is unreachable it keeps trying
with backoff; the access server serves from the state it holds meanwhile.
"""

from __future__ import annotations

import httpx

from asgate.client._http import TokenSource
from asgate.kernel import logs
from asgate.kernel.background import Background
from asgate.kernel.backoff import backoff

_log = logs.get("asgate.access.registrar")
PATH = "/mcx-registry-sync/v1/access-servers"


class Registrar:
    def __init__(
        self,
        http: httpx.AsyncClient,
        registry_url: str,
        sas_id: str,
        push_url: str,
        tokens: TokenSource,
        *,
        interval: float = 10.0,
        timeout: float = 5.0,
    ) -> None:
        self.http = http
        self.url = f"{registry_url.rstrip('/')}{PATH}/{sas_id}"
        self.sas_id = sas_id
        self.push_url = push_url.rstrip("/")
        self.tokens = tokens
        self.interval = interval
        self.timeout = timeout
        self.registered = False  # the registry has taken the last registration

    async def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.tokens.token(self.http)}"}

    async def beat(self) -> float | None:
        """Register (or refresh) once: the registry's timeout in seconds, or None if it failed."""
        try:
            response = await self.http.put(
                self.url,
                json={"csc15Uri": self.push_url},
                headers=await self._headers(),
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            self._failed(f"{type(exc).__name__}: {exc}"[:200])
            return None
        if not response.is_success:
            self._failed(f"HTTP {response.status_code}: {response.text[:200]}")
            return None
        if not self.registered:
            _log.info("registered with the registry", sas=self.sas_id, url=self.push_url)
        self.registered = True
        try:
            timeout = float(response.json().get("timeout", 0))
        except (ValueError, AttributeError):
            timeout = 0.0
        return timeout if timeout > 0 else None

    def _failed(self, error: str) -> None:
        level = _log.warning if self.registered else _log.info
        level("registering with the registry failed", sas=self.sas_id, error=error)
        self.registered = False

    async def run(self, background: Background) -> None:
        """Register, then heartbeat until the role stops; then deregister."""
        attempt = 0
        try:
            while background.running:
                timeout = await self.beat()
                if self.registered:
                    attempt = 0
                    wait = min(self.interval, timeout / 3) if timeout else self.interval
                else:
                    attempt += 1
                    wait = min(backoff(attempt, 0.5, 30.0), self.interval)
                await background.pause(wait)
        finally:
            if self.registered:
                await self.deregister()

    async def deregister(self) -> None:
        """A clean stop: the registry stops pushing to this server now (its cursor is kept)."""
        try:
            response = await self.http.delete(self.url, headers=await self._headers(), timeout=self.timeout)
            ok = response.is_success or response.status_code == 404
        except httpx.HTTPError:
            ok = False
        self.registered = False
        _log.info("deregistered from the registry" if ok else "deregistering failed", sas=self.sas_id)
