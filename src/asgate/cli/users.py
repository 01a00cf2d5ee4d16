"""``asgate users``: MC users (TS 33.180 B.2) who sign in at the IdM so that an external application
can act for them. Works on the store, before or while servers run."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
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
from asgate.domain.idm import User
from asgate.idm.passwords import hash_secret
from asgate.store import McIdTakenError, UserExistsError
from asgate.store.ids import new_id
from asgate.store.tx import Tx

T = TypeVar("T")

_ACTOR = "cli"
_USERNAME = re.compile(r"^[A-Za-z0-9._@+-]{1,128}$")
_MC_ID = re.compile(r"^\S{1,256}$")
_MIN_PASSWORD = 8  # NIST SP 800-63B 5.1.1.2


def _username(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not _USERNAME.match(value):
        raise click.BadParameter("1-128 characters: letters, digits and . _ @ + -")
    return value


def _mc_id(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and value != "" and not _MC_ID.match(value):
        raise click.BadParameter("an MC service ID has no spaces (at most 256 characters)")
    return value


def _password(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and len(value) < _MIN_PASSWORD:
        raise click.BadParameter(f"at least {_MIN_PASSWORD} characters")
    return value


def _mc_options(fn: Any) -> Any:
    for name, service in (("mcdata", "MCData"), ("mcvideo", "MCVideo"), ("mcptt", "MCPTT")):
        fn = click.option(
            f"--{name}-id", callback=_mc_id, help=f'{service} ID (e.g. alice@mc.example); "" clears it.'
        )(fn)
    return fn


_EMAIL = re.compile(r"^[^\s@]{1,128}@[^\s@]{1,127}$")
_PHONE = re.compile(r"^\+[1-9][0-9]{1,14}$")  # E.164, as OIDC Core 5.1 recommends for phone_number


def _email(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value and not _EMAIL.match(value):
        raise click.BadParameter("an e-mail address like alice@example.com")
    return value


def _phone(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value and not _PHONE.match(value):
        raise click.BadParameter("an E.164 number like +4930123456 (+, country code, digits)")
    return value


def _contact_options(fn: Any) -> Any:
    """OIDC Core 5.4: released in ID tokens and /userinfo for the email and phone scopes."""
    fn = click.option("--phone", callback=_phone, help='Phone number, E.164 (+4930123456); "" clears it.')(fn)
    return click.option("--email", callback=_email, help='E-mail address; "" clears it.')(fn)


password_option = click.option(
    "--password", callback=_password, help="Use this password instead of generating one (it shows in `ps`)."
)


@click.group()
def users() -> None:
    """MC users: their passwords and MC service IDs (the mcptt_id/mcvideo_id/mcdata_id claims)."""


@users.command("add")
@click.argument("username", callback=_username)
@_mc_options
@password_option
@click.option("--name", help="Display name.")
@_contact_options
@click.option("--disabled", is_flag=True, help="Create the user disabled (cannot sign in).")
@json_option
@pass_cli
def add(
    cli: CliContext,
    username: str,
    mcptt_id: str | None,
    mcvideo_id: str | None,
    mcdata_id: str | None,
    password: str | None,
    name: str | None,
    email: str | None,
    phone: str | None,
    disabled: bool,
    as_json: bool,
) -> None:
    """Add a user; prints the password when it was generated (it is stored only as a hash).

    \b
    $ asgate users add alice --mcptt-id alice@mc.example --name "Alice Example"
    $ asgate users add carol --mcptt-id carol@mc.example --email carol@example.com --phone +4930123456
    $ asgate users add bob --mcptt-id bob@mc.example --mcdata-id bob@mc.example --password 'long secret'
    """
    generated = None if password else _generate()
    now = datetime.now(UTC)
    user = User(
        user_id=new_id(),
        username=username,
        password_hash=hash_secret(password or generated or ""),
        display_name=name,
        email=email or None,
        phone_number=phone or None,
        mcptt_id=mcptt_id or None,
        mcvideo_id=mcvideo_id or None,
        mcdata_id=mcdata_id or None,
        disabled=disabled,
        created_at=now,
        updated_at=now,
    )

    async def go() -> None:
        async with open_store(cli) as store:
            try:
                await store.write(lambda tx: _audited(tx, "user.add", username, tx.users.add(user)))
            except UserExistsError:
                raise click.ClickException(f"user {username!r} already exists") from None
            except McIdTakenError as exc:
                raise click.ClickException(str(exc)) from None

    run(go())
    if as_json:
        emit_json({**user.public(), "password": generated})
        return
    click.echo(f"added user {username} (sub {user.user_id})")
    if generated:
        click.echo(f"password: {generated}")
        click.echo("Give it to the user now: it is stored only as a hash and cannot be shown again.")


@users.command("list")
@json_option
@pass_cli
def list_(cli: CliContext, as_json: bool) -> None:
    """List users.

    \b
    $ asgate users list
    $ asgate users list --json
    """

    async def go() -> list[User]:
        async with open_store(cli) as store:
            return await store.users.all()

    items = run(go())
    if as_json:
        emit_json([u.public() for u in items])
        return
    emit_table(
        [
            (u.username, u.display_name, u.mcptt_id, u.mcvideo_id, u.mcdata_id, "yes" if u.disabled else "no")
            for u in items
        ],
        ["USER", "NAME", "MCPTT ID", "MCVIDEO ID", "MCDATA ID", "DISABLED"],
    )


@users.command("show")
@click.argument("username")
@json_option
@pass_cli
def show(cli: CliContext, username: str, as_json: bool) -> None:
    """Show one user (``user_id`` is the ``sub`` of the user's tokens).

    \b
    $ asgate users show alice
    """

    async def go() -> User | None:
        async with open_store(cli) as store:
            return await store.users.by_username(username)

    user = run(go())
    if user is None:
        raise click.ClickException(f"no user {username!r}")
    (emit_json if as_json else emit_fields)(user.public())


@users.command("update")
@click.argument("username")
@_mc_options
@click.option("--name", help='Display name ("" clears it).')
@_contact_options
@click.option("--disable/--enable", "disabled", default=None, help="Disabling ends the user's logins.")
@pass_cli
def update(
    cli: CliContext,
    username: str,
    mcptt_id: str | None,
    mcvideo_id: str | None,
    mcdata_id: str | None,
    name: str | None,
    email: str | None,
    phone: str | None,
    disabled: bool | None,
) -> None:
    """Change a user's MC service IDs, display name, e-mail address, phone number or state.
    Disabling revokes every refresh token of the user at once; access tokens already issued expire
    on their own (idm_user_token_ttl).

    \b
    $ asgate users update alice --mcvideo-id alice@mc.example
    $ asgate users update alice --mcdata-id ""          # remove the MCData ID
    $ asgate users update alice --disable
    """
    changes: dict[str, Any] = {
        key: value or None
        for key, value in (
            ("mcptt_id", mcptt_id),
            ("mcvideo_id", mcvideo_id),
            ("mcdata_id", mcdata_id),
            ("display_name", name),
            ("email", email),
            ("phone_number", phone),
        )
        if value is not None
    }
    if disabled is not None:
        changes["disabled"] = disabled
    if not changes:
        raise click.UsageError("nothing to change")
    user = run(_update(cli, username, changes, "user.update"))
    state = "disabled" if user.disabled else "enabled"
    ids = ", ".join(f"{k} {v}" for k, v in user.mc_claims().items()) or "no MC service ID"
    click.echo(f"updated user {username}: {ids}; {state}")


@users.command("passwd")
@click.argument("username")
@password_option
@pass_cli
def passwd(cli: CliContext, username: str, password: str | None) -> None:
    """Set a new password (generated and printed unless given). The user's logins end: every
    refresh token is revoked.

    \b
    $ asgate users passwd alice
    $ asgate users passwd alice --password 'correct horse battery staple'
    """
    plain = password or _generate()
    run(_update(cli, username, {"password_hash": hash_secret(plain)}, "user.passwd"))
    click.echo(f"new password for {username}" + ("" if password else f": {plain}"))


@users.command("remove")
@click.argument("username")
@pass_cli
def remove(cli: CliContext, username: str) -> None:
    """Remove a user with all the user's grants; the user's ``sub`` is never given to anyone else.

    \b
    $ asgate users remove alice
    """

    async def go() -> bool:
        async with open_store(cli) as store:
            return await store.write(
                lambda tx: _audited(tx, "user.remove", username, tx.users.remove(username))
            )

    if not run(go()):
        raise click.ClickException(f"no user {username!r}")
    click.echo(f"removed user {username}")


async def _update(cli: CliContext, username: str, changes: dict[str, Any], action: str) -> User:
    async with open_store(cli) as store:
        try:
            user = await store.write(
                lambda tx: _audited(tx, action, username, tx.users.update(username, **changes))
            )
        except McIdTakenError as exc:
            raise click.ClickException(str(exc)) from None
        if user is None:
            raise click.ClickException(f"no user {username!r}")
        return user


def _audited(tx: Tx, action: str, username: str, done: T) -> T:
    """Audit a change in its own unit of work, if it happened (``done``: what the change returned)."""
    if done:
        tx.audit.append(_ACTOR, action, f"user/{username}")
    return done


def _generate() -> str:
    """A 128-bit random password, URL-safe (22 characters)."""
    return secrets.token_urlsafe(16)
