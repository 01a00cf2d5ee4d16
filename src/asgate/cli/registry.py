"""Administrator commands of the service registry server: ``apps``, ``grants``, ``profiles``,
``services``, ``outbox``, ``audit``. They work on the store through the same service (and the same
transaction scripts) as the ``mcx-registry-admin`` API, before or while servers run; a running server
sees the change within a second (its view follows the change log) and sends the notifications and
CSC-15 updates the change caused."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import click

from asgate.cli.base import (
    CliContext,
    emit_fields,
    emit_json,
    emit_table,
    json_option,
    open_store,
    pass_cli,
    run,
)
from asgate.domain.registry import (
    AllowedService,
    ExternalAppSpec,
    GrantSpec,
    ProfileEdit,
    RateLimit,
    RateLimits,
)
from asgate.kernel.cors import normalise_origins
from asgate.kernel.uripolicy import instance_policy, outbound_policy
from asgate.registry.lifecycle import Liveness
from asgate.registry.service import RegistryService

T = TypeVar("T")
ACTOR = "cli"


@asynccontextmanager
async def _service(cli: CliContext) -> AsyncIterator[RegistryService]:
    s = cli.settings()
    async with open_store(cli) as store:
        service = RegistryService(
            store,
            outbound_policy(s),
            liveness=Liveness(s.registry_missed_heartbeats, s.registry_removal_grace),
            sas_url=s.registry_sas_url or f"http://{s.sas_listen}",
            api_root=s.public_root,
            addresses=instance_policy(s),
        )
        await service.view.load()
        yield service


def _with(cli: CliContext, action: Callable[[RegistryService], Awaitable[T]]) -> T:
    async def go() -> T:
        async with _service(cli) as service:
            return await action(service)

    return run(go())


def parse_service(text: str) -> AllowedService:
    """``TYPE``, ``TYPE/NAME``, ``TYPE:cap1,cap2`` or ``TYPE/NAME:cap1,cap2``."""
    head, _, caps = text.partition(":")
    service_type, _, service_name = head.partition("/")
    try:
        return AllowedService(
            service_type=service_type,
            service_name=service_name or None,
            capabilities=[c for c in caps.split(",") if c] or None,
        )
    except ValueError as exc:
        raise click.BadParameter(
            f"{text!r}: {exc.errors()[0]['msg'] if hasattr(exc, 'errors') else exc}"
        ) from None


def _limits(
    app_rate: float | None,
    app_burst: int | None,
    user_rate: float | None,
    user_burst: int | None,
    inflight: int | None,
) -> RateLimits | None:
    if app_rate is None and user_rate is None and inflight is None:
        return None
    return RateLimits(
        per_application=RateLimit(rate=app_rate, burst=app_burst) if app_rate else None,
        per_user=RateLimit(rate=user_rate, burst=user_burst) if user_rate else None,
        max_inflight=inflight,
    )


def _policy_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--name", "display_name", help="Display name."),
        click.option(
            "--trust",
            type=click.Choice(["trusted", "untrusted"]),
            help="Trust domain (seed Option 1 / Option 2).",
        ),
        click.option(
            "--allow", "allow", multiple=True, help="Service it may use: TYPE[/NAME][:cap,cap] (repeatable)."
        ),
        click.option("--max-priority", help="Highest communication priority, e.g. mcpttp.10 (RFC 8101)."),
        click.option(
            "--app-rate", type=float, help="Requests/s of the whole application at the access server."
        ),
        click.option("--app-burst", type=int, help="Burst of --app-rate."),
        click.option("--user-rate", type=float, help="Requests/s of each MC user through the application."),
        click.option("--user-burst", type=int, help="Burst of --user-rate."),
        click.option("--max-inflight", type=int, help="Concurrent requests of the application."),
        click.option("--notify", "notification", help="Default notificationDestination."),
        click.option(
            "--allow-origin",
            "allow_origin",
            multiple=True,
            help="Origin of a browser application, scheme://host[:port] (repeatable; CORS).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _spec(base: ExternalAppSpec, **given: Any) -> ExternalAppSpec:
    changes: dict[str, Any] = {}
    if given["display_name"] is not None:
        changes["display_name"] = given["display_name"]
    if given["trust"] is not None:
        changes["trust_domain"] = given["trust"].upper()
    if given["allow"]:
        changes["allowed_services"] = [parse_service(a) for a in given["allow"]]
    if given["max_priority"] is not None:
        changes["max_priority"] = given["max_priority"]
    limits = _limits(
        given["app_rate"], given["app_burst"], given["user_rate"], given["user_burst"], given["max_inflight"]
    )
    if limits is not None:
        changes["rate_limits"] = limits
    if given["notification"] is not None:
        changes["default_notification_destination"] = given["notification"]
    add, remove = given.get("allow_origin", ()), given.get("remove_origin", ())
    if add or remove:
        changes["allowed_origins"] = _origins(base.allowed_origins, add, remove)
    try:  # re-validate the merged policy (model_copy alone would not)
        return ExternalAppSpec.model_validate(base.model_copy(update=changes).dump())
    except ValueError as exc:
        errors: list[dict[str, Any]] = getattr(exc, "errors", list)()
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors) or str(exc)
        raise click.UsageError(detail) from None


def _origins(current: list[str], add: tuple[str, ...], remove: tuple[str, ...]) -> list[str]:
    """``--allow-origin`` adds to the application's origins, ``--remove-origin`` takes away (both
    compared normalised, so ``HTTPS://Console.Example:443`` removes ``https://console.example``)."""
    try:
        gone = set(normalise_origins(remove))
        unknown = sorted(gone - set(current))
        added = normalise_origins(add)
    except ValueError as exc:
        raise click.UsageError(f"allowed origin: {exc}") from None
    if unknown:
        raise click.UsageError(f"not an allowed origin of this application: {', '.join(unknown)}")
    return [o for o in [*current, *added] if o not in gone]


# ---------------------------------------------------------------- apps


@click.group()
def apps() -> None:
    """External applications: what the administrator allows each one (its OAuth2 client)."""


@apps.command("add")
@click.argument("client_id")
@_policy_options
@json_option
@pass_cli
def apps_add(cli: CliContext, /, client_id: str, as_json: bool, **given: Any) -> None:
    """Register an external application's policy.

    \b
    $ asgate apps add console-1 --trust untrusted --allow GM --allow MCData --max-priority mcpttp.10
    $ asgate apps add cad-7 --allow GM/gms:groups --app-rate 50 --user-rate 5
    """
    spec = _spec(ExternalAppSpec(), **given)
    app = _with(cli, lambda svc: svc.put_app(ACTOR, client_id, spec, None))
    _show(app.dump(), as_json, f"added application {client_id}")


@apps.command("update")
@click.argument("client_id")
@_policy_options
@click.option(
    "--remove-origin", "remove_origin", multiple=True, help="Origin no longer allowed (repeatable)."
)
@json_option
@pass_cli
def apps_update(cli: CliContext, /, client_id: str, as_json: bool, **given: Any) -> None:
    """Change an application's policy: every profile of it gets a new version, the application is
    notified and the access servers are updated (seed 10.X.4).

    \b
    $ asgate apps update console-1 --max-priority mcpttp.12
    $ asgate apps update console-1 --allow-origin https://console.example
    $ asgate apps update console-1 --remove-origin https://old-console.example
    """

    async def go(svc: RegistryService) -> Any:
        current = await svc.app(client_id)
        spec = _spec(ExternalAppSpec.model_validate(current.model_dump()), **given)
        return await svc.put_app(ACTOR, client_id, spec, f'"{current.version}"')

    app = _with(cli, go)
    _show(app.dump(), as_json, f"updated application {client_id} (version {app.version})")


@apps.command("list")
@json_option
@pass_cli
def apps_list(cli: CliContext, as_json: bool) -> None:
    """List external applications.

    \b
    $ asgate apps list
    """
    items = _with(cli, lambda svc: svc.store.registry.apps())
    if as_json:
        emit_json([a.dump() for a in items])
        return
    rows = [
        (
            a.client_id,
            a.display_name,
            a.trust_domain.lower(),
            " ".join(_allowed(s) for s in a.allowed_services),
            a.max_priority,
        )
        for a in items
    ]
    emit_table(rows, ["CLIENT", "NAME", "TRUST", "ALLOWED", "MAX PRIORITY"])


@apps.command("show")
@click.argument("client_id")
@json_option
@pass_cli
def apps_show(cli: CliContext, client_id: str, as_json: bool) -> None:
    """Show one application's policy.

    \b
    $ asgate apps show console-1
    """
    _show(_with(cli, lambda svc: svc.app(client_id)).dump(), as_json)


@apps.command("remove")
@click.argument("client_id")
@pass_cli
def apps_remove(cli: CliContext, client_id: str) -> None:
    """Remove an application, its profiles (it is notified) and its grants.

    \b
    $ asgate apps remove console-1
    """
    _with(cli, lambda svc: svc.delete_app(ACTOR, client_id))
    click.echo(f"removed application {client_id}")


# ---------------------------------------------------------------- grants


@click.group()
def grants() -> None:
    """MC users authorized per external application (seed 5.2.8)."""


@grants.command("add")
@click.argument("app_id")
@click.argument("mc_service_id")
@click.option(
    "--service", "services", multiple=True, help="Only this service: TYPE[/NAME][:cap,cap] (repeatable)."
)
@pass_cli
def grants_add(cli: CliContext, app_id: str, mc_service_id: str, services: tuple[str, ...]) -> None:
    """Authorize an MC user for an application (every service its policy allows, or those given).

    \b
    $ asgate grants add console-1 alice@mc.example
    $ asgate grants add console-1 bob@mc.example --service GM
    """
    spec = GrantSpec(
        app_id=app_id, mc_service_id=mc_service_id, services=[parse_service(s) for s in services] or None
    )
    _with(cli, lambda svc: svc.put_grant(ACTOR, spec))
    click.echo(f"granted {mc_service_id} for {app_id}" + (f": {', '.join(services)}" if services else ""))


@grants.command("list")
@click.option("--app", "app_id")
@click.option("--user", "mc_service_id")
@json_option
@pass_cli
def grants_list(cli: CliContext, app_id: str | None, mc_service_id: str | None, as_json: bool) -> None:
    """List grants.

    \b
    $ asgate grants list --app console-1
    """
    items = _with(cli, lambda svc: svc.store.registry.grants(app_id=app_id, mc_service_id=mc_service_id))
    if as_json:
        emit_json([g.dump() for g in items])
        return
    rows = [
        (
            g.app_id,
            g.mc_service_id,
            " ".join(_allowed(s) for s in g.services) if g.services else "(all allowed)",
        )
        for g in items
    ]
    emit_table(rows, ["APPLICATION", "MC SERVICE ID", "SERVICES"])


@grants.command("remove")
@click.argument("app_id")
@click.argument("mc_service_id")
@pass_cli
def grants_remove(cli: CliContext, app_id: str, mc_service_id: str) -> None:
    """Withdraw an MC user's authorization for an application.

    \b
    $ asgate grants remove console-1 bob@mc.example
    """
    _with(cli, lambda svc: svc.delete_grant(ACTOR, app_id, mc_service_id))
    click.echo(f"removed the grant of {mc_service_id} for {app_id}")


# ---------------------------------------------------------------- profiles


@click.group()
def profiles() -> None:
    """Application profiles (Table 10.X.1-1)."""


@profiles.command("list")
@click.option("--app", "app_id")
@json_option
@pass_cli
def profiles_list(cli: CliContext, app_id: str | None, as_json: bool) -> None:
    """List application profiles.

    \b
    $ asgate profiles list --app console-1
    """
    records = _with(cli, lambda svc: svc.store.registry.profiles(app_id=app_id))
    if as_json:
        emit_json([r.profile.dump() for r in records])
        return
    rows = [
        (
            r.profile.app_profile_id,
            r.profile.app_id,
            f"{r.profile.authorized_service}/{r.profile.service_name}",
            r.profile.app_profile_index,
            r.profile.version,
            r.profile.service_location_information,
        )
        for r in records
    ]
    emit_table(rows, ["PROFILE ID", "APPLICATION", "SERVICE", "INDEX", "VERSION", "LOCATION"])


@profiles.command("show")
@click.argument("profile_id")
@json_option
@pass_cli
def profiles_show(cli: CliContext, profile_id: str, as_json: bool) -> None:
    """Show one application profile.

    \b
    $ asgate profiles show 5f0c...
    """
    _show(_with(cli, lambda svc: svc.app_profile(None, profile_id, None)).dump(), as_json)


@profiles.command("update")
@click.argument("profile_id")
@click.option("--max-priority", help="e.g. mcpttp.12")
@click.option("--only", "only", multiple=True, help="Allow only these capabilities (repeatable).")
@json_option
@pass_cli
def profiles_update(
    cli: CliContext, profile_id: str, max_priority: str | None, only: tuple[str, ...], as_json: bool
) -> None:
    """Edit one profile: a new version, a notification to the application, a CSC-15 update.

    \b
    $ asgate profiles update 5f0c... --max-priority mcpttp.12 --only groups
    """

    async def go(svc: RegistryService) -> Any:
        current = await svc.app_profile(None, profile_id, None)
        versions = None
        if only:
            from asgate.registry import capabilities

            versions = capabilities.restrict(current.service_interface_description.versions, frozenset(only))
        edit = ProfileEdit(versions=versions, max_priority=max_priority)
        return await svc.edit_profile(ACTOR, profile_id, edit, f'"{current.version}"')

    profile = _with(cli, go)
    _show(profile.dump(), as_json, f"profile {profile_id} is at version {profile.version}")


@profiles.command("remove")
@click.argument("profile_id")
@pass_cli
def profiles_remove(cli: CliContext, profile_id: str) -> None:
    """Withdraw a profile (the application is notified).

    \b
    $ asgate profiles remove 5f0c...
    """
    _with(cli, lambda svc: svc.delete_profile(ACTOR, profile_id))
    click.echo(f"withdrew profile {profile_id}")


# ---------------------------------------------------------------- services, outbox, audit


@click.group()
def services() -> None:
    """Registered MC service instances and their liveness."""


@services.command("list")
@click.option("--type", "service_type")
@json_option
@pass_cli
def services_list(cli: CliContext, service_type: str | None, as_json: bool) -> None:
    """List service instances with their status and deadlines.

    \b
    $ asgate services list --type GM
    """
    records = _with(cli, lambda svc: svc.store.registry.instances(service_type=service_type))
    if as_json:
        emit_json([r.view().dump() for r in records])
        return
    rows = []
    for r in records:
        interface = r.registration.proxied_interface() or r.registration.interfaces[0]
        view = r.view()
        rows.append(
            (
                r.service_instance_id,
                "/".join(r.pool),
                r.status,
                f"{interface.host}:{interface.port}",
                view.last_heartbeat_at.isoformat(timespec="seconds"),
                r.client_id,
            )
        )
    emit_table(rows, ["INSTANCE", "SERVICE", "STATUS", "ADDRESS", "LAST HEARTBEAT", "CLIENT"])


@services.command("show")
@click.argument("instance_id")
@json_option
@pass_cli
def services_show(cli: CliContext, instance_id: str, as_json: bool) -> None:
    """Show one service instance.

    \b
    $ asgate services show 0193...
    """
    instance, _ = _with(cli, lambda svc: svc.instance(None, instance_id))
    _show(instance.dump(), as_json)


@services.command("remove")
@click.argument("instance_id")
@pass_cli
def services_remove(cli: CliContext, instance_id: str) -> None:
    """Evict a service instance (it must register again).

    \b
    $ asgate services remove 0193...
    """
    _with(cli, lambda svc: svc.evict(ACTOR, instance_id))
    click.echo(f"removed service instance {instance_id}")


@click.group()
def outbox() -> None:
    """Notifications to applications and CSC-15 delivery to access servers."""


@outbox.command("list")
@click.option("--state", type=click.Choice(["PENDING", "DELIVERED", "SUPERSEDED"]))
@click.option("--app", "app_id")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10000))
@json_option
@pass_cli
def outbox_list(cli: CliContext, state: str | None, app_id: str | None, limit: int, as_json: bool) -> None:
    """Show what is pending, delivered or superseded, with attempts and the last error.

    \b
    $ asgate outbox list --state PENDING
    """

    async def go(svc: RegistryService) -> tuple[list[Any], list[Any]]:
        return await svc.store.registry.deliveries(
            state=state, app_id=app_id, limit=limit
        ), await svc.store.registry.targets()

    deliveries, targets = _with(cli, go)
    if as_json:
        emit_json(
            {"notifications": [vars(d) for d in deliveries], "accessServers": [vars(t) for t in targets]}
        )
        return
    emit_table(
        [
            (d.id, d.app_id, d.app_profile_id, d.version, d.state, d.attempts, d.last_error or "")
            for d in deliveries
        ],
        ["ID", "APPLICATION", "PROFILE", "VERSION", "STATE", "ATTEMPTS", "LAST ERROR"],
        title="Notifications",
    )
    emit_table(
        [(t.url, t.acked_seq, t.attempts, t.last_error or "") for t in targets],
        ["ACCESS SERVER", "ACKNOWLEDGED SEQUENCE", "ATTEMPTS", "LAST ERROR"],
        title="CSC-15",
    )


@outbox.command("retry")
@click.argument("notification_id", type=int)
@pass_cli
def outbox_retry(cli: CliContext, notification_id: int) -> None:
    """Make a pending notification due now (skipping its backoff).

    \b
    $ asgate outbox retry 42
    """
    ok = _with(cli, lambda svc: svc.retry_notification(notification_id))
    if not ok:
        raise click.ClickException(f"no pending notification {notification_id}")
    click.echo(f"notification {notification_id} is due now")


@click.command()
@click.option("--actor")
@click.option("--action")
@click.option("--resource")
@click.option("--after", type=int, help="Only events after this id.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
@json_option
@pass_cli
def audit(
    cli: CliContext,
    actor: str | None,
    action: str | None,
    resource: str | None,
    after: int | None,
    limit: int,
    as_json: bool,
) -> None:
    """The audit log: every mutation and every authorization decision, with its reason.

    \b
    $ asgate audit --action authorization.decide
    """
    events = _with(
        cli,
        lambda svc: svc.store.audit.scan(
            after=after, limit=limit, resource=resource, actor=actor, action=action
        ),
    )
    if as_json:
        emit_json([e.dump() for e in events])
        return
    emit_table(
        [
            (
                e.id,
                e.at.isoformat(timespec="seconds"),
                e.actor,
                e.action,
                e.resource,
                e.outcome,
                e.reason or "",
            )
            for e in events
        ],
        ["ID", "AT", "ACTOR", "ACTION", "RESOURCE", "OUTCOME", "REASON"],
    )


def _allowed(service: AllowedService) -> str:
    text = service.service_type + (f"/{service.service_name}" if service.service_name else "")
    return text + (f":{','.join(service.capabilities)}" if service.capabilities else "")


def _show(data: dict[str, Any], as_json: bool, headline: str | None = None) -> None:
    if as_json:
        emit_json(data)
        return
    if headline:
        click.echo(headline)
    emit_fields(data)
