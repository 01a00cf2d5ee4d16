"""``asgate keys``: the IdM's token-signing keys."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import click

from asgate.cli.base import CliContext, emit_json, emit_table, json_option, open_store, pass_cli, run
from asgate.idm.keys import ALGORITHMS, SigningKey
from asgate.idm.keystore import StoredKeys


@asynccontextmanager
async def _keys(cli: CliContext) -> AsyncIterator[StoredKeys]:
    """The store's key set (created, or imported from ``data_dir/keys``, if there is none yet)."""
    async with open_store(cli) as store:
        # First-start notices (a new key-encryption key, imported key files) on standard error.
        yield await StoredKeys.open(cli.settings(), store, announce=lambda text: click.echo(text, err=True))


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(math.ceil(seconds), UTC).isoformat()


def _state(key: SigningKey, active: set[str], now: float) -> str:
    if key.kid in active:
        return "active"
    if not key.signs_at(now):
        return "published, signs from " + _time(key.not_before or 0)
    return ""


@click.group()
def keys() -> None:
    """Token-signing keys: ES256 (access tokens, ID tokens of ES256 clients) and RS256 (ID tokens of
    RS256 clients), kept in the database sealed with the key-encryption key. Per algorithm the newest
    whose publication delay has passed signs; all are published in /oauth2/jwks by every server."""


@keys.command("list")
@json_option
@pass_cli
def list_(cli: CliContext, as_json: bool) -> None:
    """List signing keys, newest (active) last.

    \b
    $ asgate keys list
    """

    async def go() -> tuple[list[SigningKey], set[str]]:
        async with _keys(cli) as keys:
            ring = keys.ring
            return ring.keys(None), {ring.active_for(alg).kid for alg in ALGORITHMS}

    items, active = run(go())
    now = time.time()
    if as_json:
        emit_json(
            [
                {
                    "kid": k.kid,
                    "alg": k.alg,
                    "created": k.created,
                    "notBefore": math.ceil(k.not_before) if k.not_before is not None else k.created,
                    "active": k.kid in active,
                }
                for k in items
            ]
        )
        return
    emit_table(
        [
            (k.kid, k.alg, datetime.fromtimestamp(k.created, UTC).isoformat(), _state(k, active, now))
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

    A new key is published at once by every server and signs from signing_key_publish_delay
    seconds later (once every server has had time to publish it).

    \b
    $ asgate keys rotate
    $ asgate keys rotate --alg RS256
    """

    async def go() -> list[SigningKey]:
        async with _keys(cli) as keys:
            return [await keys.rotate(each) for each in ((alg,) if alg else ALGORITHMS)]

    for key in run(go()):
        when = _time(key.not_before or key.created)
        click.echo(f"new {key.alg} signing key {key.kid} is published and signs from {when}")


@keys.command("retire")
@click.argument("kid")
@pass_cli
def retire(cli: CliContext, kid: str) -> None:
    """Remove an old key from the JWKS (do it after its tokens have expired).

    \b
    $ asgate keys retire 3q2-...
    """

    async def go() -> bool:
        async with _keys(cli) as keys:
            return await keys.retire(kid)

    try:
        removed = run(go())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if not removed:
        raise click.ClickException(f"no key {kid!r}")
    click.echo(f"retired key {kid}")
