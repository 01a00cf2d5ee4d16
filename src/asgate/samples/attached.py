"""The sample MC services beside a running control plane (``asgate up --samples``).

At start the samples' OAuth2 client is provisioned idempotently: client ``samples`` with scope
``mcx-service-registration``, exactly the samples' pools (issue 8 item 1) and a secret kept in
``data_dir/samples-secret`` (generated at the first start, reused after); the samples' interface
descriptions are approved for their pools, as an administrator would before they register. The
samples then register through their ServiceAgents like any MC service server would, heartbeat
every ``heartbeat_period`` seconds, and deregister on shutdown, before the control plane stops
answering.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio.to_thread

from asgate.client import ClientCredentials
from asgate.domain.idm import Client
from asgate.domain.registry import Version
from asgate.idm.passwords import generate_secret, hash_secret, verify_secret
from asgate.kernel import logs
from asgate.kernel.atrest import write_private
from asgate.kernel.problem import ProblemError
from asgate.registry.lifecycle import Liveness
from asgate.registry.service import RegistryService
from asgate.samples.runner import DEFAULT_SAMPLES, SPECS, SamplesHandle, run_samples
from asgate.store import Store
from asgate.store.tx import Tx
from asgate.system.runtime import Runtime

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
    write_private(path, (secret + "\n").encode(), fsync=True)
    return secret


def sample_pools(names: Sequence[str] = DEFAULT_SAMPLES) -> dict[tuple[str, str], list[Version]]:
    """The pools the samples ``names`` register, each with the description its instances give."""
    pools: dict[tuple[str, str], list[Version]] = {}
    for name in names:
        spec = SPECS[name]
        pools[(spec.service_type, spec.service_name)] = spec.registration(name, 1).versions or []
    return pools


async def approve_sample_interfaces(rt: Runtime, names: Sequence[str], actor: str = _ACTOR) -> None:
    """The administrator's approval of the samples' descriptions (set-up code, issue 8 item 1)."""
    settings = rt.settings
    service = RegistryService(
        rt.store,
        rt.uri_policy,
        liveness=Liveness(settings.registry_missed_heartbeats, settings.registry_removal_grace),
        sas_url=settings.registry_sas_url or f"http://{settings.sas_listen}",
        api_root=settings.public_root,
    )
    for pool, versions in sample_pools(names).items():
        await service.ensure_approved(actor, pool, versions)


async def provision_client(store: Store, data_dir: Path, names: Sequence[str] = DEFAULT_SAMPLES) -> str:
    """Make client ``samples`` exist with scope ``mcx-service-registration``, the pools of the
    samples ``names`` and the secret of ``data_dir/samples-secret``; return that secret. Changes
    nothing when all is in place."""
    secret = await anyio.to_thread.run_sync(_secret, data_dir)
    pools = tuple(f"{t}/{n}" for t, n in sample_pools(names))
    client = await store.clients.get(CLIENT_ID)
    if client is None:
        now = datetime.now(UTC)
        secret_hash = await anyio.to_thread.run_sync(hash_secret, secret)
        new = Client(
            client_id=CLIENT_ID,
            name="sample MC services",
            secret_hash=secret_hash,
            scopes=(SCOPE,),
            service_pools=pools,
            created_at=now,
            updated_at=now,
        )
        await store.write(lambda tx: _audited(tx, "client.add", tx.clients.add(new)))
        return secret
    same = await anyio.to_thread.run_sync(verify_secret, client.secret_hash, secret)
    missing = [p for p in pools if p not in client.service_pools]
    if not same or SCOPE not in client.scopes or missing:
        changes: dict[str, object] = {"scopes": tuple(dict.fromkeys((*client.scopes, SCOPE)))}
        if missing:
            changes["service_pools"] = (*client.service_pools, *missing)
        if not same:  # the file was replaced or removed: the file wins
            changes["secret_hash"] = await anyio.to_thread.run_sync(hash_secret, secret)
        await store.write(lambda tx: _audited(tx, "client.update", tx.clients.update(CLIENT_ID, **changes)))
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
    secret = await provision_client(rt.store, rt.settings.data_dir, names)
    await approve_sample_interfaces(rt, names)
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


def _audited(tx: Tx, action: str, done: Client | None) -> None:
    if done is not None:
        tx.audit.append(_ACTOR, action, f"client/{CLIENT_ID}")
