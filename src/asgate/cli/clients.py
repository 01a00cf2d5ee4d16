"""``asgate clients``: provision OAuth2 clients. Works on the store, before or while servers run;
a running server sees a change at the next request that needs it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeVar

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
from asgate.domain.idm import (
    ID_TOKEN_ALG,
    ID_TOKEN_ALGS,
    REFRESH_POLICIES,
    REFRESH_TOKENS,
    REQUIRE_NONCE,
    Client,
)
from asgate.idm.oidc import redirect_uri_problem
from asgate.idm.passwords import generate_secret, hash_secret
from asgate.registry.pools import parse_pattern
from asgate.store import AsSvcIdTakenError, ClientExistsError, ReservedClientIdError
from asgate.store.tx import Tx

_ACTOR = "cli"
T = TypeVar("T")


def _redirect_uris(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    for uri in value:
        problem = redirect_uri_problem(uri)
        if problem is not None:
            raise click.BadParameter(f"{uri!r}: {problem}")
    return tuple(dict.fromkeys(value))


_REDIRECT_HELP = (
    "Allowed redirect URI (repeatable): https://..., a loopback listener http://127.0.0.1/PATH or "
    "http://[::1]/PATH (any port), or a private-use scheme com.example.app:/PATH (RFC 8252)."
)


@click.group()
def clients() -> None:
    """Provision OAuth2 clients: application servers, external applications, MC services, operators."""


@clients.command("add")
@click.argument("client_id")
@click.option(
    "--scope", "scopes", multiple=True, required=True, help="Scope the client may request (repeatable)."
)
@click.option(
    "--as-svc-id", "as_svc_ids", multiple=True, help="AS Service ID this AS may register (repeatable)."
)
@click.option(
    "--pool",
    "pools",
    multiple=True,
    help="Pool TYPE/NAME this MC service may serve, * for a whole part, e.g. GM/* (repeatable).",
)
@click.option("--secret", help="Use this secret instead of generating one.")
@click.option("--public", is_flag=True, help="A public client (no secret; authorization code + PKCE only).")
@click.option("--name", help="Display name.")
@click.option("--redirect-uri", "redirect_uris", multiple=True, callback=_redirect_uris, help=_REDIRECT_HELP)
@click.option(
    "--require-nonce",
    is_flag=True,
    help="Its OpenID Connect authorization requests must carry a nonce (optional by default).",
)
@click.option(
    "--id-token-alg",
    type=click.Choice(ID_TOKEN_ALGS),
    help="How its ID tokens are signed (default RS256 for a client with a redirect URI).",
)
@click.option(
    "--refresh-tokens",
    type=click.Choice(REFRESH_POLICIES),
    help="When a login gets a refresh token: only with the offline_access scope (the default for a"
    " client with a redirect URI, OIDC Core 11) or always.",
)
@json_option
@pass_cli
def add(
    cli: CliContext,
    client_id: str,
    scopes: tuple[str, ...],
    as_svc_ids: tuple[str, ...],
    pools: tuple[str, ...],
    secret: str | None,
    public: bool,
    name: str | None,
    redirect_uris: tuple[str, ...],
    require_nonce: bool,
    id_token_alg: str | None,
    refresh_tokens: str | None,
    as_json: bool,
) -> None:
    """Add a client; prints the secret when it was generated (it is stored only as a hash).

    \b
    $ asgate clients add as-1 --scope msgs-asregistration --as-svc-id AS1
    $ asgate clients add gms-1 --scope mcx-service-registration --pool GM/gm-north
    $ asgate clients add ops --scope msgs-admin --scope asgate-metrics
    $ asgate clients add console-1 --public --scope 3gpp:mc:ptt_service \\
        --redirect-uri com.example.console:/oauth2redirect --redirect-uri http://127.0.0.1/callback
    $ asgate clients add gms-1 --scope token-introspection   # may call /oauth2/introspect
    """
    service_pools = _patterns(pools)
    if public and secret:
        raise click.UsageError("--public and --secret exclude each other")
    generated = None if (public or secret) else generate_secret()
    plain = secret or generated
    now = datetime.now(UTC)
    client = Client(
        client_id=client_id,
        name=name,
        secret_hash=hash_secret(plain) if plain else None,
        scopes=tuple(dict.fromkeys(scopes)),
        redirect_uris=redirect_uris,
        as_svc_ids=tuple(dict.fromkeys(as_svc_ids)),
        service_pools=service_pools,
        attributes=_attributes(
            require_nonce,
            id_token_alg or ("RS256" if redirect_uris else None),
            refresh_tokens or ("offline_access" if redirect_uris else None),
        ),
        created_at=now,
        updated_at=now,
    )

    async def go() -> None:
        async with open_store(cli) as store:
            try:
                await store.write(lambda tx: _audited(tx, "client.add", client_id, tx.clients.add(client)))
            except ClientExistsError:
                raise click.ClickException(f"client {client_id!r} already exists") from None
            except (AsSvcIdTakenError, ReservedClientIdError) as exc:
                raise click.ClickException(str(exc)) from None

    run(go())
    if as_json:
        emit_json({**client.public(), "client_secret": generated})
        return
    pools_text = f"; pools: {' '.join(client.service_pools)}" if client.service_pools else ""
    click.echo(f"added client {client_id} (scopes: {' '.join(client.scopes)}{pools_text})")
    if generated:
        click.echo(f"client_secret: {generated}")
        click.echo("Keep it now: it is stored only as a hash and cannot be shown again.")


@clients.command("list")
@json_option
@pass_cli
def list_(cli: CliContext, as_json: bool) -> None:
    """List clients.

    \b
    $ asgate clients list
    """

    async def go() -> list[Client]:
        async with open_store(cli) as store:
            return await store.clients.all()

    items = run(go())
    if as_json:
        emit_json([c.public() for c in items])
        return
    emit_table(
        [
            (
                c.client_id,
                c.name,
                " ".join(c.scopes),
                " ".join(c.as_svc_ids),
                " ".join(c.service_pools),
                "yes" if c.secret_hash else "no",
            )
            for c in items
        ],
        ["CLIENT", "NAME", "SCOPES", "AS SERVICE IDS", "POOLS", "CONFIDENTIAL"],
    )


@clients.command("show")
@click.argument("client_id")
@json_option
@pass_cli
def show(cli: CliContext, client_id: str, as_json: bool) -> None:
    """Show one client.

    \b
    $ asgate clients show as-1
    """
    client = run(_get(cli, client_id))
    if as_json:
        emit_json(client.public())
    else:
        emit_fields(client.public())


@clients.command("update")
@click.argument("client_id")
@click.option("--add-scope", multiple=True)
@click.option("--remove-scope", multiple=True)
@click.option("--add-as-svc-id", multiple=True)
@click.option("--remove-as-svc-id", multiple=True)
@click.option("--add-pool", multiple=True, help="Pool TYPE/NAME (or a pattern) it may serve from now on.")
@click.option(
    "--remove-pool",
    multiple=True,
    help="Pool (pattern, as listed) it may no longer serve: refused at once, heartbeats included.",
)
@click.option("--name")
@click.option(
    "--add-redirect-uri",
    multiple=True,
    callback=_redirect_uris,
    help="Allow this redirect URI too (same kinds as `clients add --redirect-uri`).",
)
@click.option("--remove-redirect-uri", multiple=True, help="Redirect URI (as listed) no longer allowed.")
@click.option(
    "--require-nonce/--no-require-nonce",
    default=None,
    help="Whether its OpenID Connect authorization requests must carry a nonce.",
)
@click.option("--id-token-alg", type=click.Choice(ID_TOKEN_ALGS), help="How its ID tokens are signed.")
@click.option(
    "--refresh-tokens",
    type=click.Choice(REFRESH_POLICIES),
    help="When a login gets a refresh token: with offline_access, or always.",
)
@pass_cli
def update(
    cli: CliContext,
    client_id: str,
    add_scope: tuple[str, ...],
    remove_scope: tuple[str, ...],
    add_as_svc_id: tuple[str, ...],
    remove_as_svc_id: tuple[str, ...],
    add_pool: tuple[str, ...],
    remove_pool: tuple[str, ...],
    name: str | None,
    add_redirect_uri: tuple[str, ...],
    remove_redirect_uri: tuple[str, ...],
    require_nonce: bool | None,
    id_token_alg: str | None,
    refresh_tokens: str | None,
) -> None:
    """Change a client's scopes, AS Service IDs, pools, redirect URIs, name, nonce requirement or
    ID-token algorithm.

    \b
    $ asgate clients update as-1 --add-as-svc-id AS2 --remove-as-svc-id AS1
    $ asgate clients update console-1 --id-token-alg ES256
    $ asgate clients update gms-1 --add-pool GM/gm-south --remove-pool GM/gm-north
    $ asgate clients update console-1 --add-redirect-uri https://console.example/oauth2redirect
    """
    added_pools = _patterns(add_pool)

    async def go() -> Client:
        async with open_store(cli) as store:
            current = await store.clients.get(client_id)
            if current is None:
                raise click.ClickException(f"no client {client_id!r}")
            scopes = tuple(s for s in dict.fromkeys(current.scopes + add_scope) if s not in remove_scope)
            ids = tuple(
                a for a in dict.fromkeys(current.as_svc_ids + add_as_svc_id) if a not in remove_as_svc_id
            )
            changes: dict[str, object] = {"scopes": scopes}
            if ids != current.as_svc_ids:
                changes["as_svc_ids"] = ids
            pools = tuple(
                p for p in dict.fromkeys(current.service_pools + added_pools) if p not in remove_pool
            )
            if pools != current.service_pools:
                changes["service_pools"] = pools
            redirects = tuple(
                u
                for u in dict.fromkeys(current.redirect_uris + add_redirect_uri)
                if u not in remove_redirect_uri
            )
            if redirects != current.redirect_uris:
                changes["redirect_uris"] = redirects
            if name is not None:
                changes["name"] = name
            if require_nonce is not None:
                attributes = {k: v for k, v in current.attributes.items() if k != REQUIRE_NONCE}
                changes["attributes"] = {**attributes, REQUIRE_NONCE: True} if require_nonce else attributes
            for key, value in ((ID_TOKEN_ALG, id_token_alg), (REFRESH_TOKENS, refresh_tokens)):
                if value is not None:
                    attributes = dict(changes.get("attributes", current.attributes))  # type: ignore[call-overload]
                    changes["attributes"] = {**attributes, key: value}
            try:
                updated = await store.write(
                    lambda tx: _audited(
                        tx, "client.update", client_id, tx.clients.update(client_id, **changes)
                    )
                )
            except AsSvcIdTakenError as exc:
                raise click.ClickException(str(exc)) from None
            assert updated is not None
            return updated

    client = run(go())
    ids = " ".join(client.as_svc_ids) or "-"
    pools = " ".join(client.service_pools) or "-"
    click.echo(
        f"updated client {client_id}: scopes {' '.join(client.scopes) or '-'}; AS Service IDs {ids};"
        f" pools {pools}"
    )


@clients.command("reset-secret")
@click.argument("client_id")
@click.option("--secret", help="Use this secret instead of generating one.")
@pass_cli
def reset_secret(cli: CliContext, client_id: str, secret: str | None) -> None:
    """Replace a client's secret (tokens already issued stay valid until they expire).

    \b
    $ asgate clients reset-secret as-1
    """
    plain = secret or generate_secret()

    async def go() -> None:
        async with open_store(cli) as store:
            secret_hash = hash_secret(plain)  # Argon2id: outside the write transaction
            updated = await store.write(
                lambda tx: _audited(
                    tx,
                    "client.reset-secret",
                    client_id,
                    tx.clients.update(client_id, secret_hash=secret_hash),
                )
            )
            if updated is None:
                raise click.ClickException(f"no client {client_id!r}")

    run(go())
    click.echo(f"new secret for {client_id}" + ("" if secret else f": {plain}"))


@clients.command("remove")
@click.argument("client_id")
@pass_cli
def remove(cli: CliContext, client_id: str) -> None:
    """Remove a client: it can get no new token and register nothing; its registrations stay.

    \b
    $ asgate clients remove as-1
    """

    async def go() -> bool:
        async with open_store(cli) as store:
            return await store.write(
                lambda tx: _audited(tx, "client.remove", client_id, tx.clients.remove(client_id))
            )

    if not run(go()):
        raise click.ClickException(f"no client {client_id!r}")
    click.echo(f"removed client {client_id}")


def _attributes(require_nonce: bool, id_token_alg: str | None, refresh: str | None) -> dict[str, object]:
    attributes: dict[str, object] = {REQUIRE_NONCE: True} if require_nonce else {}
    if id_token_alg is not None:
        attributes[ID_TOKEN_ALG] = id_token_alg
    if refresh is not None:
        attributes[REFRESH_TOKENS] = refresh
    return attributes


def _patterns(given: tuple[str, ...]) -> tuple[str, ...]:
    try:
        return tuple(dict.fromkeys(parse_pattern(p) for p in given))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--pool") from None


async def _get(cli: CliContext, client_id: str) -> Client:
    async with open_store(cli) as store:
        client = await store.clients.get(client_id)
    if client is None:
        raise click.ClickException(f"no client {client_id!r}")
    return client


def _audited(tx: Tx, action: str, client_id: str, done: T) -> T:
    """Audit a change in its own unit of work, if it happened (``done``: what the change returned)."""
    if done:
        tx.audit.append(_ACTOR, action, f"client/{client_id}")
    return done
