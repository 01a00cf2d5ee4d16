"""``asgate agent``: a registration sidecar for an MC service server that cannot speak
``mcx-service-registration/v1`` itself (seed 5.2.8: services register their service information).

It registers what a TOML file describes, heartbeats while the server's health check passes, and
deregisters on SIGTERM/SIGINT. Client commands use only the SDK: this one runs a
:class:`asgate.client.ServiceAgent`.
"""

from __future__ import annotations

import asyncio
import json
import signal
import tomllib
import types
from pathlib import Path
from typing import Any, Self, Union, get_args, get_origin

import click
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from asgate.cli.base import CliContext, pass_cli
from asgate.client import ClientCredentials, ServiceAgent, http_health_check, tcp_health_check
from asgate.client.health import HealthCheck
from asgate.client.registration import SCOPE
from asgate.domain.registry import ServiceRegistration
from asgate.kernel import logs
from asgate.kernel.settings import HostPort

EXAMPLE = """\
registry_url = "http://127.0.0.1:7480"
client_id = "gms-1"              # or --client-id / ASGATE_CLIENT_ID
# client_secret = "..."          # better: --client-secret / ASGATE_CLIENT_SECRET

[registration]                   # the ServiceRegistration document, wire names
serviceType = "GM"
serviceName = "gms"
heartbeatPeriod = 10
environment = { region = "north" }

[[registration.interfaces]]
referencePoint = "CSC-2"
protocol = "HTTP"
ipv4Addr = "127.0.0.1"
port = 9101
apiPrefix = "/gm"

[[registration.versions]]
apiVersion = "v1"
resources = [
  { resourceName = "groups", uri = "/groups", commType = "REQUEST_RESPONSE", operations = ["GET", "POST"] },
]

[health]                         # optional: one of http (must answer 2xx) or tcp (must accept)
http = "http://127.0.0.1:9101/healthz"
"""


class HealthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    http: str | None = None
    tcp: str | None = None
    interval: float | None = Field(default=None, gt=0, le=3600)  # default: the heartbeat period
    timeout: float = Field(default=2.0, gt=0, le=60)

    @field_validator("http")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("tcp")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            HostPort.parse(value)
        return value

    @model_validator(mode="after")
    def _one_check(self) -> Self:
        if (self.http is None) == (self.tcp is None):
            raise ValueError("give exactly one of http (a URL) or tcp (HOST:PORT)")
        return self

    def check(self) -> HealthCheck:
        if self.http is not None:
            return http_health_check(self.http, timeout=self.timeout)
        target = HostPort.parse(str(self.tcp))
        return tcp_health_check(target.host, target.port, timeout=self.timeout)


class SidecarConfig(BaseModel):
    """The ``asgate agent`` TOML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    registry_url: str
    token_url: str | None = None  # default: {registry_url}/oauth2/token
    client_id: str | None = None
    client_secret: str | None = None
    registration: ServiceRegistration
    health: HealthConfig | None = None
    retry_max: float = Field(default=30.0, gt=0, le=3600)

    @field_validator("registry_url", "token_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @classmethod
    def load(cls, path: Path) -> SidecarConfig:
        """Read and validate ``path``; a ``click.BadParameter`` names every bad key."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise click.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="--config") from None
        except tomllib.TOMLDecodeError as exc:
            raise click.BadParameter(f"{path} is not valid TOML: {exc}", param_hint="--config") from None
        # The registration is a wire document whose receivers ignore unknown attributes; in a
        # hand-written file an unknown key is a typo, so refuse it.
        unknown = unknown_keys(ServiceRegistration, data.get("registration"), "registration")
        try:
            config = cls.model_validate(data)
        except ValidationError as exc:
            lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
            raise click.BadParameter(
                f"{path}: " + "; ".join(unknown + lines), param_hint="--config"
            ) from None
        if unknown:
            raise click.BadParameter(f"{path}: " + "; ".join(unknown), param_hint="--config")
        return config


def unknown_keys(model: type[BaseModel], data: Any, where: str) -> list[str]:
    """``where.key: unknown key`` for every key of ``data`` (recursively) that ``model`` lacks."""
    if not isinstance(data, dict):
        return []
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    fields |= {name: f for name, f in model.model_fields.items()}
    problems = []
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            problems.append(f"{where}.{key}: unknown key")
            continue
        nested = _model_in(field.annotation)
        if nested is None:
            continue
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            suffix = f"[{index}]" if isinstance(value, list) else ""
            problems += unknown_keys(nested, item, f"{where}.{key}{suffix}")
    return problems


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (list, Union, types.UnionType):
        for arg in get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def build_agent(config: SidecarConfig, client_id: str | None, client_secret: str | None) -> ServiceAgent:
    client_id = client_id or config.client_id
    client_secret = client_secret if client_secret is not None else config.client_secret
    if not client_id or client_secret is None:
        raise click.UsageError(
            "client credentials missing: client_id/client_secret in the file, "
            "--client-id/--client-secret, or ASGATE_CLIENT_ID/ASGATE_CLIENT_SECRET"
        )
    token_url = config.token_url or f"{config.registry_url}/oauth2/token"
    health = config.health
    return ServiceAgent(
        config.registry_url,
        config.registration,
        ClientCredentials(token_url, client_id, client_secret, SCOPE),
        health_check=health.check() if health else None,
        health_interval=health.interval if health else None,
        retry_max=config.retry_max,
    )


# click rewraps help paragraphs unless each starts with \b
_EPILOG = "Sample file (docs/service.toml):\n\n" + "\n\n".join(
    "\b\n" + p for p in EXAMPLE.strip().split("\n\n")
)


@click.command("agent", epilog=_EPILOG)
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML file: registry_url, client_id, [registration], optional [health].",
)
@click.option("--client-id", envvar="ASGATE_CLIENT_ID", help="Client with scope mcx-service-registration.")
@click.option("--client-secret", envvar="ASGATE_CLIENT_SECRET", help="Its secret.")
@click.option("--dry-run", is_flag=True, help="Validate the file, print the registration, and exit.")
@pass_cli
def agent(
    cli: CliContext, config_path: Path, client_id: str | None, client_secret: str | None, dry_run: bool
) -> None:
    """Register an MC service server with the service registry and keep it registered: heartbeats
    every heartbeatPeriod while its health check passes (none while it fails, so the registry
    suspends it), registers again if the registry removed it, deregisters on SIGTERM/Ctrl-C. The
    client must be provisioned for the pool (--pool); the pool's description reaches applications
    once the administrator approved it (asgate pools approve).

    \b
    $ asgate clients add gms-1 --scope mcx-service-registration --pool GM/gms
    $ ASGATE_CLIENT_SECRET=... asgate agent --config gms.toml
    $ asgate pools approve GM/gms                    # the administrator, once it registered
    $ asgate agent --config gms.toml --dry-run      # check the file, print the registration
    """
    config = SidecarConfig.load(config_path)
    if dry_run:
        click.echo(json.dumps(config.registration.dump(), indent=2))
        return
    settings = cli.settings()
    logs.configure(settings.log_level, settings.log_format)
    service_agent = build_agent(config, client_id, client_secret)
    asyncio.run(service_agent.run(signals=(signal.SIGTERM, signal.SIGINT)))
