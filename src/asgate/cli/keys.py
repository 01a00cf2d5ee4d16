"""``asgate keys``: the IdM's token-signing keys."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from asgate.cli.base import CliContext, emit_json, emit_table, json_option, pass_cli
from asgate.idm.keys import KeyRing


def _ring(cli: CliContext) -> KeyRing:
    ring = KeyRing(cli.settings().keys_dir)
    ring.ensure()
    return ring


@click.group()
def keys() -> None:
    """Token-signing keys (ES256). The newest signs; all are published in /oauth2/jwks."""


@keys.command("list")
@json_option
@pass_cli
def list_(cli: CliContext, as_json: bool) -> None:
    """List signing keys, newest (active) last.

    \b
    $ asgate keys list
    """
    ring = _ring(cli)
    items = ring.keys()
    active = ring.active.kid
    if as_json:
        emit_json([{"kid": k.kid, "created": k.created, "active": k.kid == active} for k in items])
        return
    emit_table(
        [
            (k.kid, datetime.fromtimestamp(k.created, UTC).isoformat(), "active" if k.kid == active else "")
            for k in items
        ],
        ["KID", "CREATED", ""],
    )


@keys.command("rotate")
@pass_cli
def rotate(cli: CliContext) -> None:
    """Create a new signing key; tokens signed by older keys stay valid until they expire.

    \b
    $ asgate keys rotate
    """
    key = _ring(cli).rotate()
    click.echo(f"new signing key {key.kid} is active")


@keys.command("retire")
@click.argument("kid")
@pass_cli
def retire(cli: CliContext, kid: str) -> None:
    """Remove an old key from the JWKS (do it after its tokens have expired).

    \b
    $ asgate keys retire 3q2-...
    """
    try:
        removed = _ring(cli).retire(kid)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if not removed:
        raise click.ClickException(f"no key {kid!r}")
    click.echo(f"retired key {kid}")
