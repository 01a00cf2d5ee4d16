"""``ExternalApplication``: an external application's whole life towards a Mission Critical system
(seed 10.X): discover MC services and get authorized at the service registry server (CSC-14,
procedure 10.X.3), stay reconfigured when the administrator changes a profile (10.X.4), and call
the services only through the service access server with the MC user's token (10.X.5).

    login = UserLogin(API, "console-1", client_secret=SECRET)
    async with ExternalApplication(API, ("console-1", SECRET), user=login,
                                   on_reconfigure=print) as app:
        await app.login()                                  # the MC user signs in (browser)
        found = await app.get_service_information(service_type="GM")
        await app.listen()                                 # or app.listen("websocket")
        gm = (await app.authorize(services=["GM"])).application_profiles[0]
        async with app.session(gm, priority="mcpttp.9") as sas:
            groups = await sas.get("/groups")
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Mapping, Sequence
from typing import Any, Literal, Self

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from asgate.client._http import TokenSource, raise_for_problem
from asgate.client.login import Browser, UserLogin, UserTokens, open_system_browser
from asgate.client.notifications import CallbackListener, WebSocketListener, problem_of_handshake
from asgate.client.reconfigure import Callback, Reconfigurer
from asgate.client.registry import API, SCOPE, RegistryClient
from asgate.client.tokens import ClientCredentials
from asgate.domain.registry import ApplicationProfile, ServiceCapabilities
from asgate.kernel import logs
from asgate.kernel.claims import MCDATA_ID, MCPTT_ID, MCVIDEO_ID
from asgate.registry.models import (
    AuthorizationRequest,
    AuthorizationResponse,
    ProfileNotification,
    ServiceInformation,
)

_log = logs.get("asgate.client.application")
# RFC 4412 r-value in the RFC 8101 namespaces, as the profiles' maxPriority.
_PRIORITY = re.compile(r"^(mcpttp|mcpttq)\.([0-9]|1[0-5])$")
# The MC service ID an application shows for its user: MCPTT's first, then MCData's, MCVideo's.
_MC_ID_PREFERENCE = (MCPTT_ID, MCDATA_ID, MCVIDEO_ID)
Services = Sequence[ServiceCapabilities | str]


def service_capabilities(text: str) -> ServiceCapabilities:
    """``TYPE``, ``TYPE/NAME``, ``TYPE:cap,cap`` or ``TYPE/NAME:cap,cap`` as one entry of the
    services capabilities information (Table 10.X.2.3-1)."""
    head, _, caps = text.partition(":")
    service_type, _, service_name = head.partition("/")
    return ServiceCapabilities(
        service_type=service_type,
        service_name=service_name or None,
        capabilities=[c for c in caps.split(",") if c] or None,
    )


def priority_header(priority: str | None) -> dict[str, str]:
    """``Resource-Priority`` (RFC 4412) for ``mcpttp.N`` / ``mcpttq.N`` (RFC 8101, N 0-15)."""
    if priority is None:
        return {}
    if not _PRIORITY.match(priority):
        raise ValueError(f"priority {priority!r}: use mcpttp.N or mcpttq.N with N from 0 to 15 (RFC 8101)")
    return {"Resource-Priority": priority}


class _UserAuth(httpx.Auth):
    """The MC user's access token on every request (refreshed by :class:`UserLogin` as needed)."""

    def __init__(self, token: Callable[[], Awaitable[str]]) -> None:
        self._token = token

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = f"Bearer {await self._token()}"
        yield request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("use SyncExternalApplication.session() for a blocking client")


async def _raise_for_problem(response: httpx.Response) -> None:
    if response.is_error:
        await response.aread()
        raise_for_problem(response)


class ExternalApplication:
    """An external application at the service registry server ``registry_url``.

    ``credentials`` are the application's own (scope ``mcx-registry``): a token source such as
    :class:`ClientCredentials`, or ``(client_id, client_secret)`` for the registry's own token
    endpoint. ``user`` is the MC user's :class:`UserLogin`, needed for :meth:`session` and
    :meth:`websocket`. ``on_reconfigure(profile)`` is called (sync or async) when a notification
    brought a new version of a profile, ``on_withdrawn(profile_id)`` when the profile is gone,
    ``on_notification(notification)`` for every notification received. ``transport`` or ``http``
    reach the registry (tests use the app in-process through ``httpx.ASGITransport``).
    """

    def __init__(
        self,
        registry_url: str,
        credentials: TokenSource | tuple[str, str],
        *,
        user: UserLogin | None = None,
        on_reconfigure: Callable[[ApplicationProfile], Awaitable[None] | None] | None = None,
        on_withdrawn: Callable[[str], Awaitable[None] | None] | None = None,
        on_notification: Callable[[ProfileNotification], Awaitable[None] | None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        websocket_url: str | None = None,
    ) -> None:
        self.registry_url = registry_url.rstrip("/")
        if isinstance(credentials, tuple):
            client_id, secret = credentials
            credentials = ClientCredentials(f"{self.registry_url}/oauth2/token", client_id, secret, SCOPE)
        self._credentials: TokenSource = credentials
        self.registry = RegistryClient(
            self.registry_url, credentials, transport=transport, http=http, timeout=timeout
        )
        self.user = user
        self.on_reconfigure = on_reconfigure
        self.on_withdrawn = on_withdrawn
        self.on_notification = on_notification
        self.websocket_url = websocket_url or _ws_url(f"{self.registry_url}{API}/notifications")
        self.profiles: dict[str, ApplicationProfile] = {}  # the current profiles, by appProfileId
        self.listener: CallbackListener | WebSocketListener | None = None
        self.reconfigurer = Reconfigurer(
            self.registry.get_app_profile,
            on_reconfigure=self._reconfigured,
            on_withdrawn=self._withdrawn,
            on_notification=self._notified,
        )

    # ------------------------------------------------------------ the MC user

    async def login(self, browser: Browser = open_system_browser) -> UserTokens:
        """Sign the MC user in (authorization code + PKCE through ``browser``: the system browser
        by default, :func:`print_url` for a terminal, :class:`ScriptedBrowser` for scripts)."""
        return await self._login().login(self.registry.http, browser)

    async def user_token(self) -> str:
        """The MC user's access token (refreshed shortly before it expires)."""
        return await self._login().token(self.registry.http)

    def _login(self) -> UserLogin:
        if self.user is None:
            raise RuntimeError("no MC user: ExternalApplication(..., user=UserLogin(...))")
        return self.user

    @property
    def mc_service_id(self) -> str | None:
        """The logged-in MC user's MC service ID (``mcptt_id``, else ``mcdata_id``, ``mcvideo_id``)."""
        if self.user is None or self.user.tokens is None:
            return None
        claims = self.user.claims
        return next((str(claims[c]) for c in _MC_ID_PREFERENCE if isinstance(claims.get(c), str)), None)

    def _user_id(self, given: str | None) -> str:
        chosen = given or self.mc_service_id
        if not chosen:
            raise ValueError("mc_service_id is required (or log the MC user in first)")
        return chosen

    # ------------------------------------------------------------ CSC-14 (seed 10.X.3, 10.X.4)

    async def get_service_information(
        self,
        mc_service_id: str | None = None,
        *,
        service_type: str | None = None,
        service_name: str | None = None,
        reference_point: str | None = None,
        protocol: str | None = None,
        api_version: str | None = None,
        capability: str | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> list[ServiceInformation]:
        """Seed 10.X.3 steps 1-2: the services this application may use for the MC user
        (``mc_service_id``, by default the logged-in user's), matching every criterion given."""
        return await self.registry.get_service_information(
            self._user_id(mc_service_id),
            service_type=service_type,
            service_name=service_name,
            reference_point=reference_point,
            protocol=protocol,
            api_version=api_version,
            capability=capability,
            environment=environment,
        )

    async def authorize(
        self,
        mc_service_id: str | None = None,
        services: Services = (),
        *,
        notification_destination: str | None = None,
    ) -> AuthorizationResponse:
        """Seed 10.X.3 steps 3-5: ask for ``services`` (``"GM"``, ``"GM/gms:groups,members"`` or
        :class:`ServiceCapabilities`) for the MC user; the registry answers with the application
        profiles granted (``result`` PARTIAL_SUCCESS and ``failures`` when only some were).
        Nothing granted raises :class:`ProblemError` (403) with the registry's cause.

        Profile updates are notified to ``notification_destination``: a URL, ``"websocket"``, or by
        default this object's listener when one is running (:meth:`listen`), else the
        administrator's default destination for the application."""
        request = self._request("AUTHORIZE", mc_service_id, services, None)
        destination = notification_destination or (self.listener.destination if self.listener else None)
        if destination == "websocket":
            request = request.model_copy(update={"websocket_notification": True})
        elif destination is not None:
            request = request.model_copy(update={"notification_destination": destination})
        response = await self.registry.update_authorization(request)
        for profile in response.application_profiles:
            self.profiles[profile.app_profile_id] = profile
            self.reconfigurer.applied(profile)
        return response

    async def remove_authorization(
        self,
        mc_service_id: str | None = None,
        services: Services = (),
        *,
        profile_ids: Sequence[str] | None = None,
    ) -> AuthorizationResponse:
        """Seed 10.X.3 (REMOVE): withdraw the profiles named by ``profile_ids`` or, without them,
        every profile of the ``services`` listed; the answer holds the profiles that remain.
        ``services`` defaults to the services of the profiles named (or of all known ones)."""
        if not services:
            named = [self.profiles[i] for i in profile_ids or () if i in self.profiles]
            known = named or list(self.profiles.values())
            services = sorted({f"{p.authorized_service}/{p.service_name}" for p in known})
        request = self._request("REMOVE", mc_service_id, services, profile_ids)
        response = await self.registry.update_authorization(request)
        remaining = {p.app_profile_id for p in response.application_profiles}
        for profile_id in [i for i in self.profiles if i not in remaining]:
            del self.profiles[profile_id]
            self.reconfigurer.forget(profile_id)
        return response

    def _request(
        self, kind: Literal["AUTHORIZE", "REMOVE"], user: str | None, services: Services, ids: Any
    ) -> AuthorizationRequest:
        if not services:
            raise ValueError("name at least one service, e.g. services=['GM']")
        return AuthorizationRequest(
            mc_service_id=self._user_id(user),
            request_type=kind,
            services_capabilities_information=[
                s if isinstance(s, ServiceCapabilities) else service_capabilities(s) for s in services
            ],
            application_profile_information=list(ids) if ids else None,
        )

    async def get_app_profile(self, profile_id: str, version: int | None = None) -> ApplicationProfile:
        """Seed 10.X.4 steps 4-5: the current profile, or an earlier ``version`` of it."""
        return await self.registry.get_app_profile(profile_id, version)

    # ------------------------------------------------------------ notifications (seed 10.X.4)

    async def listen(
        self,
        via: Literal["callback", "websocket"] = "callback",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str | None = None,
        public_url: str | None = None,
        retry_max: float = 30.0,
    ) -> str:
        """Start receiving profile notifications; returns the notification destination, which
        :meth:`authorize` then sends by default. ``"callback"``: an HTTP server on ``host:port``
        (loopback, an ephemeral port and an unguessable path by default; ``public_url`` when the
        registry must use another address); ``"websocket"``: the registry's notification
        WebSocket (no inbound connection needed; reopened after a drop, waiting at most
        ``retry_max`` seconds between attempts)."""
        if self.listener is not None:
            raise RuntimeError("already listening")
        handler = self.reconfigurer.notified
        listener: CallbackListener | WebSocketListener
        if via == "websocket":
            listener = WebSocketListener(self.websocket_url, self._app_token, handler, retry_max=retry_max)
        else:
            listener = CallbackListener(handler, host=host, port=port, path=path, public_url=public_url)
        await listener.start()
        self.listener = listener
        return listener.destination

    async def stop_listening(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            await listener.stop()

    async def _app_token(self) -> str:
        return await self._credentials.token(self.registry.http)

    async def _notified(self, note: ProfileNotification) -> None:
        await _call(self.on_notification, note)

    async def _reconfigured(self, profile: ApplicationProfile) -> None:
        self.profiles[profile.app_profile_id] = profile
        await _call(self.on_reconfigure, profile)

    async def _withdrawn(self, profile_id: str) -> None:
        self.profiles.pop(profile_id, None)
        await _call(self.on_withdrawn, profile_id)

    # ------------------------------------------------------------ access through the SAS (seed 10.X.5)

    def session(
        self,
        profile: ApplicationProfile | str,
        priority: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        raise_errors: bool = False,
    ) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` for one profile's service: relative URLs go to the profile's
        service location (``{sasUrl}/{appProfileIndex}`` for an untrusted application), every
        request carries the MC user's token and, with ``priority`` (``"mcpttp.9"``),
        ``Resource-Priority``; the response's ``Resource-Priority`` tells the priority applied.
        ``raise_errors``: error responses raise the access server's :class:`ProblemError`."""
        return httpx.AsyncClient(
            base_url=self.service_location(profile),
            auth=_UserAuth(self.user_token),
            headers={**(headers or {}), **priority_header(priority)},
            transport=transport,
            timeout=timeout,
            event_hooks={"response": [_raise_for_problem]} if raise_errors else None,
        )

    @contextlib.asynccontextmanager
    async def websocket(
        self,
        profile: ApplicationProfile | str,
        path: str,
        priority: str | None = None,
        *,
        subprotocols: Sequence[str] | None = None,
        open_timeout: float = 10.0,
        **options: Any,
    ) -> AsyncIterator[ClientConnection]:
        """A WebSocket (``websockets``) to ``path`` of one profile's service through the access
        server, with the same headers as :meth:`session`; a refused upgrade raises the access
        server's :class:`ProblemError`. Use as ``async with app.websocket(gm, "/x") as ws:``."""
        base = self.service_location(profile).rstrip("/")
        url = _ws_url(f"{base}/{path.lstrip('/')}")
        headers = {"Authorization": f"Bearer {await self.user_token()}", **priority_header(priority)}
        try:
            socket = await connect(
                url,
                additional_headers=headers,
                subprotocols=[Subprotocol(p) for p in subprotocols] if subprotocols else None,
                open_timeout=open_timeout,
                **options,
            )
        except InvalidStatus as exc:
            raise problem_of_handshake(exc) from None
        try:
            yield socket
        finally:
            await socket.close()

    def service_location(self, profile: ApplicationProfile | str) -> str:
        """Where :meth:`session` sends requests for ``profile`` (a profile or the id of one in hand)."""
        return self._profile(profile).service_location_information

    def _profile(self, profile: ApplicationProfile | str) -> ApplicationProfile:
        if isinstance(profile, ApplicationProfile):
            return profile
        if profile not in self.profiles:
            raise ValueError(f"no application profile {profile!r} in hand: authorize first")
        return self.profiles[profile]

    # ------------------------------------------------------------ lifecycle

    async def aclose(self) -> None:
        """Stop listening, drop pending reconfigurations, close the registry client."""
        await self.stop_listening()
        await self.reconfigurer.aclose()
        await self.registry.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def _call(callback: Callback | None, argument: Any) -> None:
    if callback is not None:
        result = callback(argument)
        if isinstance(result, Awaitable):
            await result


def _ws_url(url: str) -> str:
    """``http(s)://`` to ``ws(s)://`` (a ``ws://`` URL is left as it is)."""
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    return url
