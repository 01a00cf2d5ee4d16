"""``asgate app``: what an external application does, from the command line, through the SDK only
(:class:`asgate.client.ExternalApplication`): discover MC services, get authorized, read its
application profiles, call a service through the service access server as an MC user, and follow
profile notifications (seed 10.X.3, 10.X.4, 10.X.5).

The application is the OAuth2 client given by ``--client-id``/``--client-secret`` (or
``ASGATE_CLIENT_ID``/``ASGATE_CLIENT_SECRET``) with scope ``mcx-registry``, at the registry
``--api`` (``ASGATE_API_URL``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx

from asgate.cli.base import emit_fields, emit_json, emit_table, json_option
from asgate.client import (
    ApplicationProfile,
    AuthorizationResponse,
    ExternalApplication,
    ProfileNotification,
    ScriptedBrowser,
    ServiceCapabilities,
    ServiceInformation,
    UserLogin,
    open_system_browser,
    print_url,
    raise_for_problem,
    service_capabilities,
)

T = TypeVar("T")
DEFAULT_API = "http://127.0.0.1:7480"
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_PRIORITY = re.compile(r"^(mcpttp|mcpttq)\.([0-9]|1[0-5])$")


def _app_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--api",
            envvar="ASGATE_API_URL",
            default=DEFAULT_API,
            show_default=True,
            help="The service registry server (and IdM) [env ASGATE_API_URL].",
        ),
        click.option(
            "--client-id",
            envvar="ASGATE_CLIENT_ID",
            required=True,
            help="The application's client id, scope mcx-registry [env ASGATE_CLIENT_ID].",
        ),
        click.option(
            "--client-secret",
            envvar="ASGATE_CLIENT_SECRET",
            required=True,
            help="Its secret [env ASGATE_CLIENT_SECRET].",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _run(api: str, coro: Coroutine[Any, Any, T]) -> T:
    """Run one command's work; network failures become one readable line (ProblemError is
    turned into one by the top-level group)."""
    try:
        return asyncio.run(coro)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {api}: {exc or type(exc).__name__}") from None
    except (OSError, TimeoutError) as exc:
        raise click.ClickException(f"network error: {exc or type(exc).__name__}") from None


def _application(api: str, client_id: str, secret: str, **kw: Any) -> ExternalApplication:
    return ExternalApplication(api, (client_id, secret), **kw)


def _priority(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _PRIORITY.match(value):
        raise click.BadParameter("mcpttp.N or mcpttq.N with N from 0 to 15 (RFC 8101)")
    return value


def _method(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if value.upper() not in _METHODS:
        raise click.BadParameter(f"{value!r}: one of {', '.join(_METHODS)}")
    return value.upper()


def _services(
    _ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]
) -> list[ServiceCapabilities]:
    parsed = []
    for text in value:
        try:
            parsed.append(service_capabilities(text))
        except ValueError as exc:
            raise click.BadParameter(f"{text!r}: {_first_error(exc)}") from None
    return parsed


def _environment(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in value:
        key, sep, val = item.partition(":")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: use KEY:VALUE")
        pairs[key] = val
    return pairs


@click.group()
def app() -> None:
    """Act as an external application: discover MC services, get authorized, call them through the
    service access server as an MC user, follow profile notifications. Uses only the SDK.

    \b
    $ export ASGATE_API_URL=http://127.0.0.1:7480 ASGATE_CLIENT_ID=console-1 ASGATE_CLIENT_SECRET=...
    $ asgate app discover alice@mc.example --type GM
    $ asgate app authorize alice@mc.example GM
    $ asgate app call 5f0c... GET /groups --priority mcpttp.9
    """


# ---------------------------------------------------------------- discover (seed 10.X.3 steps 1-2)


@app.command()
@click.argument("mc_service_id")
@click.option("--type", "service_type", help="Service type: MCPTT, MCVideo, MCData, GM, CM, IDM, KM.")
@click.option("--name", "service_name", help="Service name (a pool).")
@click.option("--reference-point", help="e.g. CSC-2.")
@click.option("--protocol", help="e.g. HTTP.")
@click.option("--api-version", help="e.g. v1.")
@click.option("--capability", help="A resource or custom operation name.")
@click.option("--env", "environment", multiple=True, callback=_environment, help="KEY:VALUE (repeatable).")
@json_option
@_app_options
def discover(
    mc_service_id: str,
    environment: dict[str, str],
    as_json: bool,
    api: str,
    client_id: str,
    client_secret: str,
    **criteria: str | None,
) -> None:
    """List the MC services the application may use for an MC user (get service information).

    \b
    $ asgate app discover alice@mc.example
    $ asgate app discover alice@mc.example --type GM --capability groups --env region:north
    """

    async def go() -> list[ServiceInformation]:
        async with _application(api, client_id, client_secret) as sdk:
            return await sdk.get_service_information(mc_service_id, environment=environment, **criteria)

    found = _run(api, go())
    if as_json:
        emit_json([s.dump() for s in found])
        return
    emit_table(
        [
            (
                f"{s.service_type}/{s.service_name}",
                " ".join(s.reference_points),
                " ".join(s.protocols),
                " ".join(v.api_version for v in s.versions or ()),
                " ".join(_capabilities(s)),
                s.available_instances,
            )
            for s in found
        ],
        ["SERVICE", "REFERENCE POINTS", "PROTOCOLS", "VERSIONS", "CAPABILITIES", "INSTANCES"],
    )


def _capabilities(service: ServiceInformation) -> list[str]:
    names: list[str] = []
    for version in service.versions or ():
        names += [r.resource_name for r in version.resources or ()]
        names += [c.cust_op_name for c in version.cust_operations or ()]
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------- authorize (seed 10.X.3 steps 3-5)


@app.command()
@click.argument("mc_service_id")
@click.argument("services", nargs=-1, required=True, callback=_services)
@click.option("--notify", "destination", help='notificationDestination URL, or "websocket".')
@click.option("--remove", is_flag=True, help="Withdraw the authorization (REMOVE) instead.")
@click.option(
    "--profile", "profile_ids", multiple=True, help="With --remove: only this profile (repeatable)."
)
@json_option
@_app_options
def authorize(
    mc_service_id: str,
    services: list[ServiceCapabilities],
    destination: str | None,
    remove: bool,
    profile_ids: tuple[str, ...],
    as_json: bool,
    api: str,
    client_id: str,
    client_secret: str,
) -> None:
    """Ask for authorization for an MC user and SERVICES (TYPE[/NAME][:cap,cap]); prints the
    application profiles granted, and what was not granted and why.

    \b
    $ asgate app authorize alice@mc.example GM MCData
    $ asgate app authorize alice@mc.example GM/sample-gm:groups --notify http://127.0.0.1:9200/notify
    $ asgate app authorize alice@mc.example GM --remove
    """
    if profile_ids and not remove:
        raise click.UsageError("--profile goes with --remove")

    async def go() -> AuthorizationResponse:
        async with _application(api, client_id, client_secret) as sdk:
            if remove:
                return await sdk.remove_authorization(
                    mc_service_id, services, profile_ids=profile_ids or None
                )
            return await sdk.authorize(mc_service_id, services, notification_destination=destination)

    answer = _run(api, go())
    if as_json:
        emit_json(answer.dump())
        return
    click.echo(f"result: {answer.result}")
    _profiles_table(answer.application_profiles)
    for failure in answer.failures or ():
        service = failure.service_type + (f"/{failure.service_name}" if failure.service_name else "")
        click.echo(f"not granted: {service}: {failure.cause}: {failure.detail}", err=True)


def _first_error(exc: ValueError) -> str:
    errors: list[dict[str, Any]] = getattr(exc, "errors", list)()
    if errors:
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
    return str(exc)


def _profiles_table(profiles: list[ApplicationProfile]) -> None:
    emit_table(
        [
            (
                p.app_profile_id,
                f"{p.authorized_service}/{p.service_name}",
                p.app_profile_index,
                p.version,
                p.service_interface_description.max_priority or "-",
                p.service_location_information,
            )
            for p in profiles
        ],
        ["PROFILE ID", "SERVICE", "INDEX", "VERSION", "MAX PRIORITY", "LOCATION"],
    )


# ---------------------------------------------------------------- profile (seed 10.X.4 steps 4-5)


@app.command()
@click.argument("profile_id")
@click.option("--version", type=click.IntRange(1), help="An earlier version.")
@json_option
@_app_options
def profile(
    profile_id: str, version: int | None, as_json: bool, api: str, client_id: str, client_secret: str
) -> None:
    """Show one of the application's profiles (the current version, or --version N).

    \b
    $ asgate app profile 5f0c...
    $ asgate app profile 5f0c... --version 1 --json
    """

    async def go() -> ApplicationProfile:
        async with _application(api, client_id, client_secret) as sdk:
            return await sdk.get_app_profile(profile_id, version)

    found = _run(api, go())
    if as_json:
        emit_json(found.dump())
    else:
        emit_fields(_summary(found))


def _summary(p: ApplicationProfile) -> dict[str, Any]:
    description = p.service_interface_description
    limits = description.rate_limits.dump() if description.rate_limits else None
    return {
        "profile id": p.app_profile_id,
        "application": p.app_id,
        "service": f"{p.authorized_service}/{p.service_name}",
        "index": p.app_profile_index,
        "version": p.version,
        "location": p.service_location_information,
        "max priority": description.max_priority,
        "rate limits": limits,
        "reference points": description.reference_points,
        "protocols": description.protocols,
        "resources": [
            f"{r.resource_name} {r.uri} {','.join(r.operations or ['*'])} ({v.api_version})"
            for v in description.versions
            for r in v.resources or ()
        ],
        "updated": p.updated_at.isoformat(timespec="seconds"),
    }


# ---------------------------------------------------------------- call (seed 10.X.5)


@app.command()
@click.argument("profile_id")
@click.argument("method", metavar="METHOD", callback=_method)
@click.argument("path")
@click.option("--priority", callback=_priority, help="Resource-Priority, e.g. mcpttp.9 (RFC 8101).")
@click.option("--data", help="Request body (JSON text), or @FILE.")
@click.option("--content-type", default="application/json", show_default=True, help="Of --data.")
@click.option("-H", "--header", "headers", multiple=True, help="Extra header 'Name: value' (repeatable).")
@click.option("--username", help="Sign the MC user in with this name through the login page (scripts).")
@click.option("--password", envvar="ASGATE_USER_PASSWORD", help="With --username [env ASGATE_USER_PASSWORD].")
@click.option("--no-browser", is_flag=True, help="Print the sign-in URL instead of opening a browser.")
@click.option(
    "--user-scope", default="openid 3gpp:mc:ptt_service", show_default=True, help="Scopes asked for the user."
)
@click.option(
    "--redirect-path",
    default="/callback",
    show_default=True,
    help="The application's registered loopback redirect is http://127.0.0.1{PATH}.",
)
@json_option
@_app_options
def call(
    profile_id: str,
    method: str,
    path: str,
    priority: str | None,
    data: str | None,
    content_type: str,
    headers: tuple[str, ...],
    username: str | None,
    password: str | None,
    no_browser: bool,
    user_scope: str,
    redirect_path: str,
    as_json: bool,
    api: str,
    client_id: str,
    client_secret: str,
) -> None:
    """Call a service through the service access server as an MC user: the user signs in (the
    browser opens, or --no-browser prints the URL; --username/--password for scripts), then
    METHOD PATH goes to the profile's service location with the user's token. Prints the body;
    the status and the applied Resource-Priority go to stderr.

    \b
    $ asgate app call 5f0c... GET /groups --priority mcpttp.9
    $ asgate app call 5f0c... POST /groups --data '{"groupId": "fire"}' --username alice --password ...
    """
    if username is not None and password is None:
        raise click.UsageError("--username needs --password (or ASGATE_USER_PASSWORD)")
    extra = dict(_header_pair(h) for h in headers)
    body = _body(data)
    if body is not None:
        extra.setdefault("Content-Type", content_type)
    login = UserLogin(
        api, client_id, client_secret=client_secret, scope=user_scope, redirect_path=redirect_path
    )
    browser = (
        ScriptedBrowser(username, password or "")
        if username is not None
        else (print_url if no_browser else open_system_browser)
    )

    async def go() -> httpx.Response:
        async with _application(api, client_id, client_secret, user=login) as sdk:
            target = await sdk.get_app_profile(profile_id)
            await sdk.login(browser)
            async with sdk.session(target, priority, headers=extra) as sas:
                response = await sas.request(method, path, content=body)
                await response.aread()
                return response

    response = _run(api, go())
    _print_response(response, as_json)


def _header_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise click.BadParameter(f"{text!r}: use 'Name: value'", param_hint="--header")
    return name.strip(), value.strip()


def _body(data: str | None) -> bytes | None:
    if data is None:
        return None
    if data.startswith("@"):
        try:
            return Path(data[1:]).read_bytes()
        except OSError as exc:
            raise click.BadParameter(f"{data[1:]}: {exc.strerror}", param_hint="--data") from None
    return data.encode()


def _print_response(response: httpx.Response, as_json: bool) -> None:
    applied = response.headers.get("resource-priority")
    try:
        payload: Any = response.json() if response.content else None
    except ValueError:
        payload = response.text
    if response.is_error and isinstance(payload, dict) and "cause" in payload:
        raise_for_problem(response)  # one readable line, non-zero exit (the top-level group)
    if as_json:
        emit_json({"status": response.status_code, "resourcePriority": applied, "body": payload})
    else:
        status = f"{response.status_code} {response.reason_phrase}"
        click.echo(status + (f"  Resource-Priority: {applied}" if applied else ""), err=True)
        if isinstance(payload, dict | list):
            emit_json(payload)
        elif payload:
            click.echo(payload)
    if response.is_error:
        raise click.exceptions.Exit(1)


# ---------------------------------------------------------------- listen (seed 10.X.4)


@app.command()
@click.argument("mc_service_id", required=False)
@click.argument("services", nargs=-1, callback=_services)
@click.option(
    "--websocket", is_flag=True, help="Use the registry's notification WebSocket (no inbound port)."
)
@click.option("--listen", "listen_on", help="Callback server HOST:PORT (default 127.0.0.1, any free port).")
@click.option("--path", help="Callback path (default: an unguessable one).")
@click.option("--public-url", help="The callback URL to give the registry, when it differs (a proxy).")
@click.option("--count", type=click.IntRange(1), help="Exit after this many reconfigurations/withdrawals.")
@json_option
@_app_options
def listen(
    mc_service_id: str | None,
    services: list[ServiceCapabilities],
    websocket: bool,
    listen_on: str | None,
    path: str | None,
    public_url: str | None,
    count: int | None,
    as_json: bool,
    api: str,
    client_id: str,
    client_secret: str,
) -> None:
    """Follow profile notifications and print each one with the reconfigured profile, as they
    come, until Ctrl-C (or --count). With MC_SERVICE_ID and SERVICES the application authorizes
    first, so that the registry notifies this listener; otherwise the registry must already
    notify the address given with --listen/--path (or --public-url).

    \b
    $ asgate app listen alice@mc.example GM --websocket
    $ asgate app listen alice@mc.example GM MCData --listen 127.0.0.1:9200 --json
    $ asgate app listen --listen 0.0.0.0:9200 --path /notify --public-url http://cad.example:9200/notify
    """
    if bool(mc_service_id) != bool(services):
        raise click.UsageError("give MC_SERVICE_ID with at least one SERVICE, or neither")
    if websocket and (listen_on or path or public_url):
        raise click.UsageError("--websocket excludes --listen, --path and --public-url")
    host, port = _host_port(listen_on) if listen_on else ("127.0.0.1", 0)
    printer = _Printer(as_json, count)

    async def go() -> None:
        async with _application(
            api,
            client_id,
            client_secret,
            on_notification=printer.notification,
            on_reconfigure=printer.reconfigured,
            on_withdrawn=printer.withdrawn,
        ) as sdk:
            if websocket:
                destination = await sdk.listen("websocket")
            else:
                destination = await sdk.listen(host=host, port=port, path=path, public_url=public_url)
            printer.event("listening", destination=destination)
            if mc_service_id:
                answer = await sdk.authorize(mc_service_id, services)
                for granted in answer.application_profiles:
                    printer.event("authorized", profile=granted)
            await printer.wait()

    with contextlib.suppress(KeyboardInterrupt):
        _run(api, go())


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{text!r}: use HOST:PORT", param_hint="--listen")
    return host.strip("[]") or "127.0.0.1", int(port)


class _Printer:
    """Prints the listener's events, one line each (JSON lines with --json)."""

    def __init__(self, as_json: bool, count: int | None) -> None:
        self.as_json = as_json
        self.left = count
        self._done = asyncio.Event()

    async def wait(self) -> None:
        """Until --count is reached, SIGINT or SIGTERM."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):  # not the main thread
                loop.add_signal_handler(sig, self._done.set)
        try:
            await self._done.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):
                    loop.remove_signal_handler(sig)

    def event(self, kind: str, *, profile: ApplicationProfile | None = None, **fields: Any) -> None:
        if self.as_json:
            record: dict[str, Any] = {"event": kind, **fields}
            if profile is not None:
                record["profile"] = profile.dump()
            click.echo(json.dumps(record))
            return
        text = " ".join(f"{v}" for v in fields.values())
        if profile is not None:
            description = profile.service_interface_description
            resources = [r.resource_name for v in description.versions for r in v.resources or ()]
            service = f"{profile.authorized_service}/{profile.service_name}"
            text += (
                f"{profile.app_profile_id} version {profile.version}: {service} "
                f"at {profile.service_location_information}, "
                f"max priority {description.max_priority or '-'}, resources {', '.join(resources) or '-'}"
            )
        click.echo(f"{kind}: {text}")

    def notification(self, note: ProfileNotification) -> None:
        if self.as_json:
            self.event("notification", notification=note.dump())
        else:
            self.event("notification", text=f"profile {note.app_profile_id} version {note.version}")

    def reconfigured(self, profile: ApplicationProfile) -> None:
        self.event("reconfigured", profile=profile)
        self._count()

    def withdrawn(self, profile_id: str) -> None:
        self.event("withdrawn", appProfileId=profile_id)
        self._count()

    def _count(self) -> None:
        if self.left is not None:
            self.left -= 1
            if self.left <= 0:
                self._done.set()
