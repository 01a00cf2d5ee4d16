"""The sample MC services beside a running control plane (``asgate up --samples``).

At start the samples' OAuth2 client is provisioned idempotently: client ``samples`` with scope
``mcx-service-registration`` and a secret kept in ``data_dir/samples-secret`` (generated at the
first start, reused after). The samples then register through their ServiceAgents like any MC
service server would, heartbeat every ``heartbeat_period`` seconds, and deregister on shutdown,
before the control plane stops answering.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio.to_thread

from asgate import logs
from asgate.client import ClientCredentials
from asgate.idm.models import Client
from asgate.idm.passwords import generate_secret, hash_secret, verify_secret
from asgate.problem import ProblemError
from asgate.runtime import Runtime
from asgate.samples.runner import DEFAULT_SAMPLES, SamplesHandle, run_samples
from asgate.store import AuditEvent, Store

CLIENT_ID = "samples"
SCOPE = "mcx-service-registration"
SECRET_FILE = "samples-secret"  # noqa: S105 - the name of the file holding it
HEARTBEAT_PERIOD = 2  # seconds: a killed instance is suspended within a few seconds
_ACTOR = "asgate up --samples"
_log = logs.get("asgate.samples")


def _secret(data_dir: Path) -> str:
    """The secret in ``data_dir/samples-secret``, written (owner-only) the first time."""
    path = data_dir / SECRET_FILE
    if path.is_file():
        secret = path.read_text(encoding="utf-8").strip()
        if secret:
            return secret
    secret = generate_secret()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secret + "\n")
    return secret


async def provision_client(store: Store, data_dir: Path) -> str:
    """Make client ``samples`` exist with scope ``mcx-service-registration`` and the secret of
    ``data_dir/samples-secret``; return that secret. Changes nothing when all is in place."""
    secret = await anyio.to_thread.run_sync(_secret, data_dir)
    client = await store.clients.get(CLIENT_ID)
    if client is None:
        now = datetime.now(UTC)
        secret_hash = await anyio.to_thread.run_sync(hash_secret, secret)
        await store.clients.add(
            Client(
                client_id=CLIENT_ID,
                name="sample MC services",
                secret_hash=secret_hash,
                scopes=(SCOPE,),
                created_at=now,
                updated_at=now,
            )
        )
        await store.audit.record(AuditEvent.now(_ACTOR, "client.add", f"client/{CLIENT_ID}"))
        return secret
    same = await anyio.to_thread.run_sync(verify_secret, client.secret_hash, secret)
    if not same or SCOPE not in client.scopes:
        changes: dict[str, object] = {"scopes": tuple(dict.fromkeys((*client.scopes, SCOPE)))}
        if not same:  # the file was replaced or removed: the file wins
            changes["secret_hash"] = await anyio.to_thread.run_sync(hash_secret, secret)
        await store.clients.update(CLIENT_ID, **changes)
        await store.audit.record(AuditEvent.now(_ACTOR, "client.update", f"client/{CLIENT_ID}"))
    return secret


@asynccontextmanager
async def attached_samples(
    rt: Runtime,
    names: Sequence[str] = DEFAULT_SAMPLES,
    *,
    base_port: int = 9101,
    heartbeat_period: int = HEARTBEAT_PERIOD,
    register_timeout: float = 15.0,
) -> AsyncIterator[SamplesHandle]:
    """Run the samples ``names`` registered with this process's registry (``rt``); on exit they
    deregister and stop. Entered once the control plane listens (they register over HTTP)."""
    secret = await provision_client(rt.store, rt.settings.data_dir)
    root = rt.settings.public_root
    credentials = ClientCredentials(f"{root}/oauth2/token", CLIENT_ID, secret, SCOPE)
    handle = await run_samples(
        root,
        credentials,
        names,
        base_port=base_port,
        heartbeat_period=heartbeat_period,
        agent_options={"sas_issuer": rt.settings.sas_issuer},  # also right when `issuer` is set
    )
    try:
        agents = [r.agent for r in handle.instances if r.agent is not None]
        try:
            await asyncio.gather(*(agent.wait_registered(register_timeout) for agent in agents))
        except (TimeoutError, RuntimeError, ProblemError) as exc:  # the agents go on retrying
            _log.warning("samples not registered yet", error=str(exc) or type(exc).__name__)
        else:
            _log.info("samples registered", instances=[r.instance for r in handle.instances])
        yield handle
    finally:
        await handle.stop()
