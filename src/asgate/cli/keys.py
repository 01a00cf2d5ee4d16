"""``asgate keys``: the IdM's token-signing keys."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from asgate.cli.base import CliContext, emit_json, emit_table, json_option, pass_cli
from asgate.idm.keys import ALGORITHMS, KeyRing


def _ring(cli: CliContext) -> KeyRing:
    ring = KeyRing(cli.settings().keys_dir)
    ring.ensure()
    return ring


@click.group()
def keys() -> None:
    """Token-signing keys: ES256 (access tokens, ID tokens of ES256 clients) and RS256 (ID tokens of
    RS256 clients). Per algorithm the newest signs; all are published in /oauth2/jwks."""


@keys.command("list")
@json_option
@pass_cli
def list_(cli: CliContext, as_json: bool) -> None:
    """List signing keys, newest (active) last.

    \b
    $ asgate keys list
    """
    ring = _ring(cli)
    items = ring.keys(None)
    active = {ring.active_for(alg).kid for alg in ALGORITHMS}
    if as_json:
        emit_json(
            [{"kid": k.kid, "alg": k.alg, "created": k.created, "active": k.kid in active} for k in items]
        )
        return
    emit_table(
        [
            (
                k.kid,
                k.alg,
                datetime.fromtimestamp(k.created, UTC).isoformat(),
                "active" if k.kid in active else "",
            )
            for k in items
        ],
        ["KID", "ALG", "CREATED", ""],
    )


@keys.command("rotate")
@click.option(
    "--alg", type=click.Choice(ALGORITHMS), help="Rotate only this algorithm's key (default: both)."
)
@pass_cli
def rotate(cli: CliContext, alg: str | None) -> None:
    """Create new signing keys; tokens signed by older keys stay valid until they expire.

    \b
    $ asgate keys rotate
    $ asgate keys rotate --alg RS256
    """
    ring = _ring(cli)
    for each in (alg,) if alg else ALGORITHMS:
        key = ring.rotate(each)
        click.echo(f"new {each} signing key {key.kid} is active")


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
