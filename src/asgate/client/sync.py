"""A blocking facade over :class:`asgate.client.ExternalApplication`, for scripts and threaded
programs: the async object runs on a private event loop in a daemon thread, and each method waits
for its result there. Callbacks (``on_reconfigure``...) run on that thread.

    with SyncExternalApplication(API, ("console-1", SECRET), user=login) as app:
        app.login()
        gm = app.authorize(services=["GM"]).application_profiles[0]
        with app.session(gm, priority="mcpttp.9") as sas:
            print(sas.get("/groups").json())
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Generator, Mapping
from typing import Any, Literal, Self, TypeVar

import httpx

from asgate.client._http import TokenSource
from asgate.client.application import ExternalApplication, Services, priority_header
from asgate.client.login import Browser, UserLogin, UserTokens, open_system_browser
from asgate.domain.registry import ApplicationProfile
from asgate.registry.models import AuthorizationResponse, ServiceInformation

T = TypeVar("T")


class _UserAuth(httpx.Auth):
    def __init__(self, app: SyncExternalApplication) -> None:
        self._app = app

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._app.user_token()}"
        yield request


class SyncExternalApplication:
    """The methods of :class:`ExternalApplication`, blocking; the same arguments and results.
    ``app`` is the async object (for what this facade leaves out, e.g. ``websocket``)."""

    def __init__(
        self,
        registry_url: str,
        credentials: TokenSource | tuple[str, str],
        *,
        user: UserLogin | None = None,
        timeout: float = 10.0,
        **options: Any,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="asgate-sdk", daemon=True)
        self._thread.start()

        async def build() -> ExternalApplication:  # created on its loop, as asyncio objects expect
            return ExternalApplication(registry_url, credentials, user=user, timeout=timeout, **options)

        self.app = self._run(build())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop.is_closed():
            coro.close()
            raise RuntimeError("the application is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def profiles(self) -> dict[str, ApplicationProfile]:
        return self.app.profiles

    def login(self, browser: Browser = open_system_browser) -> UserTokens:
        return self._run(self.app.login(browser))

    def user_token(self) -> str:
        return self._run(self.app.user_token())

    def get_service_information(
        self, mc_service_id: str | None = None, **criteria: Any
    ) -> list[ServiceInformation]:
        return self._run(self.app.get_service_information(mc_service_id, **criteria))

    def authorize(
        self, mc_service_id: str | None = None, services: Services = (), **options: Any
    ) -> AuthorizationResponse:
        return self._run(self.app.authorize(mc_service_id, services, **options))

    def remove_authorization(
        self, mc_service_id: str | None = None, services: Services = (), **options: Any
    ) -> AuthorizationResponse:
        return self._run(self.app.remove_authorization(mc_service_id, services, **options))

    def get_app_profile(self, profile_id: str, version: int | None = None) -> ApplicationProfile:
        return self._run(self.app.get_app_profile(profile_id, version))

    def listen(self, via: Literal["callback", "websocket"] = "callback", **options: Any) -> str:
        return self._run(self.app.listen(via, **options))

    def stop_listening(self) -> None:
        self._run(self.app.stop_listening())

    def session(
        self,
        profile: ApplicationProfile | str,
        priority: str | None = None,
        *,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> httpx.Client:
        """A blocking ``httpx.Client`` like :meth:`ExternalApplication.session`."""
        return httpx.Client(
            base_url=self.app.service_location(profile),
            auth=_UserAuth(self),
            headers={**(headers or {}), **priority_header(priority)},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._run(self.app.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
