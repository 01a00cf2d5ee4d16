"""``asgate up`` and ``asgate serve``: run the server roles."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import uvloop

from asgate.cli.base import CliContext, pass_cli
from asgate.kernel import logs
from asgate.kernel.settings import Settings
from asgate.system import roles
from asgate.system.serving import run as serve_roles

if TYPE_CHECKING:
    from asgate.samples import SamplesHandle
    from asgate.system.runtime import Runtime


def _listener_options(fn: Any) -> Any:
    options = [
        click.option("--listen", help="Control plane HOST:PORT (default 127.0.0.1:7480)."),
        click.option(
            "--sas-listen",
            help="Access server (data plane) HOST:PORT (default 127.0.0.1:7481; the access role).",
        ),
        click.option(
            "--tls-cert",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="PEM certificate.",
        ),
        click.option(
            "--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="PEM private key."
        ),
        click.option(
            "--tls-client-ca",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="CA bundle: require and verify client certificates (mutual TLS).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


Companion = Callable[["Runtime"], AbstractAsyncContextManager[object]]


def _start(
    cli: CliContext, role_names: list[str] | None, companion: Companion | None = None, **listener: Any
) -> None:
    settings = cli.settings(**listener)
    logs.configure(settings.log_level, settings.log_format)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve_roles(settings, role_names, companion=companion))


@click.command()
@_listener_options
@click.option(
    "--samples",
    is_flag=True,
    help="Also run the sample MC services (GM twice, CM, MCData, MCPTT), registered with this registry.",
)
@click.option(
    "--samples-port",
    type=click.IntRange(0, 65535),
    default=9101,
    show_default=True,
    help="The samples' first port (the others follow); 0: any free ports.",
)
@pass_cli
def up(cli: CliContext, /, samples: bool, samples_port: int, **listener: Any) -> None:
    """Run every server role in one process (embedded SQLite unless ASGATE_DATABASE_URL is set).

    With --samples the sample MC services run beside them and register through their agents as
    client "samples" (provisioned at start; its secret is kept in DATA_DIR/samples-secret).

    \b
    $ asgate up
    $ asgate up --samples                         # what `make run` runs
    $ asgate up --listen 0.0.0.0:7480 --tls-cert cert.pem --tls-key key.pem
    $ asgate up --sas-listen 0.0.0.0:8481
    """
    if samples:
        from asgate.samples import LOOPBACK_ALLOWED

        # The samples listen on 127.0.0.1, which the outbound and instance policies deny by default.
        listener.update(outbound_allow_loopback=True, instance_allow_loopback=True)
        click.echo(LOOPBACK_ALLOWED)
    _start(cli, None, _with_samples(samples_port) if samples else None, **listener)


def _with_samples(base_port: int) -> Companion:
    @asynccontextmanager
    async def companion(rt: Runtime) -> AsyncIterator[None]:
        from asgate.samples import DEFAULT_SAMPLES
        from asgate.samples.attached import attached_samples

        async with AsyncExitStack() as stack:
            try:
                handle = await stack.enter_async_context(attached_samples(rt, base_port=base_port))
            except OSError as exc:
                last = base_port + len(DEFAULT_SAMPLES) - 1
                raise click.ClickException(
                    f"the sample MC services cannot listen on 127.0.0.1:{base_port}-{last}: "
                    f"{exc.strerror or exc}; choose other ports with --samples-port (0: any free ones)"
                ) from None
            click.echo(banner(rt.settings, handle))
            yield

    return companion


def banner(settings: Settings, samples: SamplesHandle) -> str:
    """Where things are, printed once ``asgate up --samples`` is ready."""
    from asgate.samples import SPECS
    from asgate.samples.attached import HEARTBEAT_PERIOD, SECRET_FILE

    control = settings.public_root
    sas = settings.registry_sas_url or f"{'https' if settings.tls else 'http'}://{settings.sas_listen}"
    by_service: dict[str, list[str]] = {}
    for running in samples.instances:
        by_service.setdefault(SPECS[running.service].service_type, []).append(
            f"{running.instance} :{running.port}"
        )
    pools = " · ".join(f"{kind} {', '.join(items)}" for kind, items in by_service.items())
    database = "PostgreSQL" if settings.db_url.startswith("postgresql") else "SQLite"
    command = _command()
    return "\n".join(
        [
            "",
            "asgate is up, with the sample MC services",
            "",
            f"  control plane   {control}   (API docs: {control}/docs)",
            f"  access server   {sas}   (external applications reach the MC services here)",
            f"  samples         {pools}",
            f"                  registered by their agents as client 'samples' "
            f"(secret in {settings.data_dir / SECRET_FILE}), heartbeat {HEARTBEAT_PERIOD} s",
            f"  data            {settings.data_dir} ({database})",
            "",
            f"  the demo        {command} demo      (its own asgate on free ports; this one keeps running)",
            f"  explore         {command} services list   ·   docs/sdk.md   ·   Ctrl-C stops everything",
            "",
        ]
    )


def _command() -> str:
    """How the user ran us: ``.venv/bin/asgate`` from the checkout, else ``asgate``."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "asgate" and argv0.is_absolute():
        try:
            return str(argv0.relative_to(Path.cwd()))
        except ValueError:
            pass
    return "asgate"


@click.command()
@click.argument("role_names", nargs=-1, required=True, type=click.Choice(roles.names()))
@_listener_options
@pass_cli
def serve(cli: CliContext, /, role_names: tuple[str, ...], **listener: Any) -> None:
    """Run only some roles, to scale them separately (share ASGATE_DATABASE_URL between them).

    \b
    $ asgate serve msgin5g --listen 0.0.0.0:7490
    $ asgate serve idm
    $ asgate serve access --listen 0.0.0.0:7491 --sas-listen 0.0.0.0:8481
    """
    if listener.get("sas_listen") is not None and "access" not in role_names:
        raise click.UsageError("--sas-listen is the access server's address: add the role 'access'")
    _start(cli, list(role_names), **listener)


@click.command("sas-worker", hidden=True)
@pass_cli
def sas_worker(cli: CliContext) -> None:
    """One data-plane process of a multi-worker access server (started by the access role)."""
    from asgate.access.workers import run_worker

    settings = cli.settings()
    logs.configure(settings.log_level, settings.log_format)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run_worker(settings))
