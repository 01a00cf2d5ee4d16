"""The service registry server: discovery, heartbeats, notification fan-out, registry -> SAS
propagation, and etcd beside it as a reference for register and discover (issue 3's targets).

One ``asgate up`` (every role, SQLite, one worker) pinned to core 0, the load on core 1:

1. **discovery** (``GET /mcx-registry/v1/service-information`` for one service by type and name,
   as a console looks up the service it uses) with 10, 1,000 and 10,000 registered instances
   (pools of two, over the seven service types): >= 5,000 req/s; p99 at 10 k <= 2 x p99 at 10;
2. **heartbeats** (``PUT .../services/{id}/heartbeat`` for random instances among 1,000);
3. **fan-out**: 10,000 trusted-domain applications subscribed with callbacks (nginx answers them)
   to one service; the administrator evicts one of its two instances (one API call): every
   application's profile changes and is notified; time until the outbox holds nothing pending
   (target <= 10 s);
4. **propagation**: the administrator grants an MC user for an application; time from the grant's
   acknowledgement until the SAS forwards that user's request (p50/p99 of 200; target p99 <= 100 ms);
5. **etcd** (Debian's ``etcd-server``, its JSON gateway, same core): put with a lease (register) and
   range over a prefix (discover) among 10,000 keys, beside asgate's register and discovery;
6. **authorization** (issue 14): the authorization response of fresh applications with the registry
   waiting for the SAS's acknowledgement (``registry_sas_ack_wait`` 2 s, the default) and without
   (0): p50/p99 of each, the added latency, and how many first requests the SAS refused right after.

    python bench/registry.py                              # everything, about 5 minutes
    python bench/registry.py --scenarios discovery --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from asgate.auth.tokens import Principal  # noqa: E402
from asgate.domain.registry import ExternalAppSpec, GrantSpec, ServiceRegistration
from asgate.idm.keys import KeyRing  # noqa: E402
from asgate.kernel.settings import Settings  # noqa: E402
from asgate.registry.lifecycle import Liveness  # noqa: E402
from asgate.registry.models import AuthorizationRequest
from asgate.registry.service import RegistryService  # noqa: E402
from asgate.system.runtime import Runtime  # noqa: E402
from common import (  # noqa: E402
    asgate,
    machine,
    require,
    server_keyring,
    start_asgate,
    stop,
    wait_port,
    write_results,
    wrk,
)
from sas import BACKEND, nginx  # noqa: E402

API, SAS, ETCD = 7590, 7591, 2379
ROOT_URL = f"http://127.0.0.1:{API}"
SCENARIOS = ("discovery", "heartbeats", "fanout", "propagation", "etcd", "authorization")
TYPES = ["MCPTT", "MCVideo", "MCData", "GM", "CM", "IDM", "KM"]
USER = "alice@mc.example"
SERVICE = Principal("bench-svc", "bench-svc", frozenset({"mcx-service-registration"}), ROOT_URL, 2e9)


def settings() -> dict[str, Any]:
    return {
        "listen": f"127.0.0.1:{API}",
        "sas_listen": f"127.0.0.1:{SAS}",
        # Notifications go to nginx, instances are registered, on loopback.
        "outbound_allow_loopback": True,
        "instance_allow_loopback": True,
        "registry_notify_concurrency": 128,
        "sas_max_connections_per_source": 100_000,
    }


def registration(name: str, service_type: str, port: int, heartbeat: int = 3600) -> ServiceRegistration:
    return ServiceRegistration.model_validate(
        {
            "serviceType": service_type,
            "serviceName": name,
            "interfaces": [
                {"referencePoint": "CSC-2", "protocol": "HTTP", "ipv4Addr": "127.0.0.1", "port": port}
            ],
            "versions": [
                {
                    "apiVersion": "v1",
                    "resources": [
                        {
                            "resourceName": "x",
                            "uri": "/x",
                            "commType": "REQUEST_RESPONSE",
                            "operations": ["GET"],
                        },
                        {
                            "resourceName": "groups",
                            "uri": "/groups",
                            "commType": "REQUEST_RESPONSE",
                            "operations": ["GET", "POST"],
                        },
                    ],
                }
            ],
            "environment": {"site": f"site-{port % 3}"},
            "heartbeatPeriod": heartbeat,
        }
    )


async def _in_batches(calls: list[Any], size: int = 256) -> list[Any]:
    results: list[Any] = []
    for start in range(0, len(calls), size):
        results += await asyncio.gather(*calls[start : start + size])
    return results


async def _fill(
    data_dir: Path, instances: int, apps: int, trusted: bool, destination: str | None
) -> dict[str, Any]:
    """Set-up, in process through the registry's own service layer (not measured): the clients, the
    instances, the applications with their grants and authorizations."""
    s = Settings(data_dir=data_dir, **settings())
    async with Runtime.open(s) as rt:
        service = RegistryService(
            rt.store,
            rt.uri_policy,
            liveness=Liveness(3, 60),
            sas_url=f"http://{s.sas_listen}",
            api_root=ROOT_URL,
            addresses=rt.instance_policy,
        )
        await service.start()
        regs = [
            registration(f"svc-{i // 2}", TYPES[(i // 2) % len(TYPES)], 10_000 + i) for i in range(instances)
        ]
        made = await _in_batches([service.register(SERVICE, r) for r in regs])
        pools = {(r.service_type, r.service_name): r.versions or [] for r in regs}
        await _in_batches([service.ensure_approved("bench", p, v) for p, v in pools.items()])
        app_ids = [f"app-{i}" for i in range(apps)]
        spec = ExternalAppSpec.model_validate(
            {
                "trustDomain": "TRUSTED" if trusted else "UNTRUSTED",
                "allowedServices": [{"serviceType": t} for t in TYPES],
                "maxPriority": "mcpttp.15",
            }
        )
        await _in_batches([service.put_app("bench", app, spec, None) for app in app_ids])
        await _in_batches(
            [service.put_grant("bench", GrantSpec(app_id=app, mc_service_id=USER)) for app in app_ids]
        )
        if destination is not None:
            request = AuthorizationRequest.model_validate(
                {
                    "mcServiceId": USER,
                    "requestType": "AUTHORIZE",
                    "servicesCapabilitiesInformation": [{"serviceType": TYPES[0], "serviceName": "svc-0"}],
                    "notificationDestination": destination,
                }
            )
            principals = [Principal(app, app, frozenset({"mcx-registry"}), ROOT_URL, 2e9) for app in app_ids]
            await _in_batches([service.update_authorization(p, request) for p in principals])
        return {"instance_ids": [m.service_instance_id for m in made]}


def fill(
    data_dir: Path, instances: int, apps: int = 1, trusted: bool = False, destination: str | None = None
) -> dict[str, Any]:
    started = time.perf_counter()
    filled = asyncio.run(_fill(data_dir, instances, apps, trusted, destination))
    print(
        f"  set up {instances:,} instances and {apps:,} applications in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return filled


def clients(data_dir: Path, apps: list[str]) -> None:
    asgate(
        data_dir,
        "clients",
        "add",
        "bench-svc",
        "--scope",
        "mcx-service-registration",
        "--secret",
        "svc-secret",
        *[arg for t in TYPES for arg in ("--pool", f"{t}/*")],  # issue 8 item 1: the pools it serves
    )
    asgate(
        data_dir,
        "clients",
        "add",
        "ops",
        "--scope",
        "mcx-registry-admin",
        "--scope",
        "mcx-access-profiles",
        "--secret",
        "ops-secret",
    )
    for app in apps:
        asgate(data_dir, "clients", "add", app, "--scope", "mcx-registry", "--secret", f"{app}-secret")


def token(client: str, secret: str, scope: str) -> str:
    response = httpx.post(
        f"{ROOT_URL}/oauth2/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(client, secret),
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def fresh(tmp: Path, name: str) -> Path:
    data_dir = tmp / name
    data_dir.mkdir()
    return data_dir


# ---------------------------------------------------------------- scenarios


def discovery(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for count in (10, 1_000, 10_000):
        data_dir = fresh(tmp, f"discovery-{count}")
        clients(data_dir, ["app-0"])
        fill(data_dir, count)
        proc = start_asgate(data_dir, settings())
        try:
            bearer = f"Authorization: Bearer {token('app-0', 'app-0-secret', 'mcx-registry')}"
            url = f"{ROOT_URL}/mcx-registry/v1/service-information?mc-service-id={USER}&service-type=MCPTT&service-name=svc-0"
            answer = httpx.get(url, headers=dict([bearer.split(": ", 1)]))
            assert answer.status_code == 200 and len(answer.json()["serviceInformation"]) == 1, answer.text
            wrk(url, duration=2, connections=args.connections, headers=[bearer])
            run = wrk(url, duration=args.duration, connections=args.connections, headers=[bearer])
        finally:
            stop(proc)
        result[str(count)] = run
        print(
            f"  {count:>6,} instances: {run['requests_per_s']:8,.0f} req/s  p50 {run['p50_ms']:.2f} ms  p99 {run['p99_ms']:.2f} ms  non-2xx {run['non_2xx']}",
            flush=True,
        )
    result["p99_ratio_10k_over_10"] = round(result["10000"]["p99_ms"] / result["10"]["p99_ms"], 2)
    print(f"  p99 at 10 k / p99 at 10 = {result['p99_ratio_10k_over_10']} (target <= 2)", flush=True)
    return result


HEARTBEAT_LUA = """
local ids = {%s}
local headers = {["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")}
math.randomseed(os.time())
request = function()
  return wrk.format("PUT", "/mcx-service-registration/v1/services/" .. ids[math.random(#ids)] .. "/heartbeat", headers)
end
"""

REGISTER_LUA = """
local headers = {["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"), ["Content-Type"] = "application/json"}
local n = 0
request = function()
  n = n + 1
  local body = '{"serviceType":"GM","serviceName":"reg-' .. n .. '","interfaces":[{"referencePoint":"CSC-2",'
    .. '"protocol":"HTTP","ipv4Addr":"127.0.0.1","port":9001}],"versions":[{"apiVersion":"v1","resources":'
    .. '[{"resourceName":"x","uri":"/x","commType":"REQUEST_RESPONSE","operations":["GET"]}]}],"heartbeatPeriod":3600}'
  return wrk.format("POST", "/mcx-service-registration/v1/services", headers, body)
end
"""


def heartbeats(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    data_dir = fresh(tmp, "heartbeats")
    clients(data_dir, ["app-0"])
    ids = fill(data_dir, 1_000)["instance_ids"]
    script = data_dir / "heartbeat.lua"
    script.write_text(HEARTBEAT_LUA % ",".join(f'"{i}"' for i in ids))
    proc = start_asgate(data_dir, settings())
    try:
        env = {"BENCH_TOKEN": token("bench-svc", "svc-secret", "mcx-service-registration")}
        wrk(ROOT_URL, duration=2, connections=args.connections, script=script, env=env)
        run = wrk(ROOT_URL, duration=args.duration, connections=args.connections, script=script, env=env)
    finally:
        stop(proc)
    print(
        f"  {run['requests_per_s']:,.0f} heartbeats/s  p99 {run['p99_ms']:.2f} ms  non-2xx {run['non_2xx']}",
        flush=True,
    )
    return run


def fanout(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    data_dir = fresh(tmp, "fanout")
    clients(data_dir, [])
    ids = fill(data_dir, 2, apps=args.apps, trusted=True, destination=f"http://127.0.0.1:{BACKEND}/notify")[
        "instance_ids"
    ]
    proc = start_asgate(data_dir, settings())
    try:
        ops = {"Authorization": f"Bearer {token('ops', 'ops-secret', 'mcx-registry-admin')}"}
        outbox = f"{ROOT_URL}/mcx-registry-admin/v1/outbox?state=PENDING&limit=1"

        def pending() -> bool:
            items = httpx.get(outbox, headers=ops).json()["items"]
            return any(i.get("kind") == "notification" for i in items)

        deadline = time.monotonic() + 120
        while pending() and time.monotonic() < deadline:  # the notifications of the set-up first
            time.sleep(0.5)
        started = time.perf_counter()
        answer = httpx.delete(f"{ROOT_URL}/mcx-registry-admin/v1/services/{ids[1]}", headers=ops, timeout=120)
        assert answer.status_code == 204, answer.text
        committed = time.perf_counter() - started
        while pending():
            if time.perf_counter() - started > 300:
                raise SystemExit("fan-out: notifications still pending after 300 s")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        delivered = httpx.get(
            f"{ROOT_URL}/mcx-registry-admin/v1/outbox?state=DELIVERED&limit=1000&app-id=app-0", headers=ops
        ).json()["items"]
    finally:
        stop(proc)
    versions = sorted(i["details"]["version"] for i in delivered)
    print(
        f"  {args.apps:,} applications notified in {elapsed:.2f} s (the eviction committed in {committed:.2f} s;"
        f" target <= 10 s); app-0 acknowledged versions {versions}",
        flush=True,
    )
    return {"apps": args.apps, "committed_s": round(committed, 3), "all_acknowledged_s": round(elapsed, 3)}


def propagation(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    data_dir = fresh(tmp, "propagation")
    clients(data_dir, ["console-1"])
    asgate(data_dir, "apps", "add", "console-1", "--allow", "GM", "--max-priority", "mcpttp.15")
    asgate(data_dir, "grants", "add", "console-1", USER)
    proc = start_asgate(data_dir, settings())
    samples: list[float] = []
    try:
        svc = {"Authorization": f"Bearer {token('bench-svc', 'svc-secret', 'mcx-service-registration')}"}
        body = registration("bench-gm", "GM", BACKEND).dump()
        assert (
            httpx.post(f"{ROOT_URL}/mcx-service-registration/v1/services", json=body, headers=svc).status_code
            == 201
        )
        app = {"Authorization": f"Bearer {token('console-1', 'console-1-secret', 'mcx-registry')}"}
        request = {
            "mcServiceId": USER,
            "requestType": "AUTHORIZE",
            "servicesCapabilitiesInformation": [{"serviceType": "GM"}],
        }
        profile = httpx.post(f"{ROOT_URL}/mcx-registry/v1/authorizations", json=request, headers=app).json()[
            "applicationProfiles"
        ][0]
        ops = {"Authorization": f"Bearer {token('ops', 'ops-secret', 'mcx-registry-admin')}"}
        keyring = server_keyring(data_dir)
        url = f"http://127.0.0.1:{SAS}/{profile['appProfileIndex']}/x"
        with httpx.Client(timeout=5) as http:
            wait_for(
                lambda: http.get(url, headers=user_headers(keyring, USER)).status_code == 200, "the profile"
            )
            for n in range(args.samples):
                user = f"user{n}@mc.example"
                headers = user_headers(keyring, user)
                assert http.get(url, headers=headers).status_code == 403
                answer = http.put(
                    f"{ROOT_URL}/mcx-registry-admin/v1/grants/console-1/{user}", json={}, headers=ops
                )
                assert answer.status_code == 201, answer.text
                acknowledged = time.perf_counter()
                while http.get(url, headers=headers).status_code != 200:
                    if time.perf_counter() - acknowledged > 10:
                        raise SystemExit(f"the grant of {user} did not reach the SAS in 10 s")
                samples.append((time.perf_counter() - acknowledged) * 1000)
    finally:
        stop(proc)
    samples.sort()
    result = {
        "samples": len(samples),
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": round(samples[min(len(samples) - 1, int(0.99 * len(samples)))], 2),
        "max_ms": round(samples[-1], 2),
    }
    print(
        f"  grant -> SAS forwards: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms (target p99 <= 100 ms)",
        flush=True,
    )
    return result


def user_headers(keyring: KeyRing, user: str, app: str = "console-1") -> dict[str, str]:
    now = int(time.time())
    claims = {
        "iss": ROOT_URL, "sub": f"user-{user}", "aud": "asgate", "iat": now, "nbf": now, "exp": now + 3600,
        "client_id": app, "azp": app, "scope": "openid 3gpp:mc:ptt_service", "mcptt_id": user,
    }  # fmt: skip
    return {"Authorization": f"Bearer {keyring.sign(claims)}"}


def app_headers(keyring: KeyRing, app: str) -> dict[str, str]:
    now = int(time.time())
    claims = {
        "iss": ROOT_URL, "sub": app, "aud": "asgate", "iat": now, "nbf": now, "exp": now + 3600,
        "client_id": app, "scope": "mcx-registry",
    }  # fmt: skip
    return {"Authorization": f"Bearer {keyring.sign(claims)}"}


def authorization(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Issue 14: what waiting for the SAS's acknowledgement adds to the authorization response."""
    result: dict[str, Any] = {}
    configurations = {  # the SAS's fetch on a miss off in the first two, to see the window itself
        "neither": {"registry_sas_ack_wait": 0, "sas_profile_fetch_rate": 0},
        "registry_waits": {"registry_sas_ack_wait": 2, "sas_profile_fetch_rate": 0},
        "both": {},
    }
    for name, overrides in configurations.items():
        data_dir = fresh(tmp, f"authorization-{name}")
        clients(data_dir, [])
        proc = start_asgate(data_dir, settings() | overrides)
        samples: list[float] = []
        refused = 0
        try:
            svc = {"Authorization": f"Bearer {token('bench-svc', 'svc-secret', 'mcx-service-registration')}"}
            body = registration("bench-gm", "GM", BACKEND).dump()
            created = httpx.post(f"{ROOT_URL}/mcx-service-registration/v1/services", json=body, headers=svc)
            assert created.status_code == 201, created.text
            ops = {"Authorization": f"Bearer {token('ops', 'ops-secret', 'mcx-registry-admin')}"}
            keyring = server_keyring(data_dir)
            spec = {"allowedServices": [{"serviceType": "GM"}]}
            request = {
                "mcServiceId": USER,
                "requestType": "AUTHORIZE",
                "servicesCapabilitiesInformation": [{"serviceType": "GM"}],
            }
            with httpx.Client(timeout=10) as http:
                for n in range(args.samples):
                    app = f"fresh-{n}"
                    assert http.put(
                        f"{ROOT_URL}/mcx-registry-admin/v1/apps/{app}", json=spec, headers=ops
                    ).is_success
                    assert http.put(
                        f"{ROOT_URL}/mcx-registry-admin/v1/grants/{app}/{USER}", json={}, headers=ops
                    ).is_success
                    started = time.perf_counter()
                    answer = http.post(
                        f"{ROOT_URL}/mcx-registry/v1/authorizations",
                        json=request,
                        headers=app_headers(keyring, app),
                    )
                    samples.append((time.perf_counter() - started) * 1000)
                    assert answer.status_code == 200, answer.text
                    index = answer.json()["applicationProfiles"][0]["appProfileIndex"]
                    first = http.get(
                        f"http://127.0.0.1:{SAS}/{index}/x", headers=user_headers(keyring, USER, app)
                    )
                    refused += first.status_code == 403
        finally:
            stop(proc)
        samples.sort()
        result[name] = {
            "samples": len(samples),
            "p50_ms": round(statistics.median(samples), 2),
            "p99_ms": round(samples[min(len(samples) - 1, int(0.99 * len(samples)))], 2),
            "first_request_refused": refused,
        }
    base, waited = result["neither"], result["registry_waits"]
    result["added_p50_ms"] = round(waited["p50_ms"] - base["p50_ms"], 2)
    result["added_p99_ms"] = round(waited["p99_ms"] - base["p99_ms"], 2)
    print(
        f"  authorization: p50 {base['p50_ms']} -> {waited['p50_ms']} ms, p99 {base['p99_ms']} -> "
        f"{waited['p99_ms']} ms with the wait; first requests refused {base['first_request_refused']} -> "
        f"{waited['first_request_refused']} (both: {result['both']['first_request_refused']}) of {base['samples']}",
        flush=True,
    )
    return result


def wait_for(check: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


# ---------------------------------------------------------------- etcd and asgate's register


ETCD_PUT_LUA = """
local lease = os.getenv("BENCH_LEASE")
local value = os.getenv("BENCH_VALUE")
local n = 0
request = function()
  n = n + 1
  local key = "svc/GM/reg-" .. n .. "/1"
  return wrk.format("POST", "/v3/kv/put", {["Content-Type"] = "application/json"},
    '{"key":"' .. enc(key) .. '","value":"' .. value .. '","lease":"' .. lease .. '"}')
end
"""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# Base64 in Lua, so that every put has its own key.
LUA_B64 = r"""
local alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
function enc(data)
  return ((data:gsub('.', function(x)
    local r, b = '', x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if (#x < 6) then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return alphabet:sub(c + 1, c + 1)
  end) .. ({ '', '==', '=' })[#data % 3 + 1])
end
"""


def etcd(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("etcd") is None:
        print("  etcd not found (apt-get install etcd-server): left out", flush=True)
        return {"skipped": "etcd not installed"}
    result: dict[str, Any] = {}
    etcd_dir = tmp / "etcd"
    cmd = [
        "taskset", "-c", "0", "etcd", "--data-dir", str(etcd_dir), "--log-level", "error",
        "--listen-client-urls", f"http://127.0.0.1:{ETCD}", "--advertise-client-urls", f"http://127.0.0.1:{ETCD}",
        "--listen-peer-urls", "http://127.0.0.1:2390", "--initial-advertise-peer-urls", "http://127.0.0.1:2390",
        "--initial-cluster", "default=http://127.0.0.1:2390",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=(tmp / "etcd.log").open("wb"))
    try:
        wait_port(ETCD)
        base = f"http://127.0.0.1:{ETCD}"
        lease = httpx.post(f"{base}/v3/lease/grant", json={"TTL": 3600}).json()["ID"]
        value = _b64(json.dumps(registration("svc-0", "MCPTT", 10_000).dump()))
        with httpx.Client() as http:  # 10,000 keys, pools of two, as for asgate's discovery
            for i in range(10_000):
                key = f"svc/{TYPES[(i // 2) % len(TYPES)]}/svc-{i // 2}/{i}"
                http.post(f"{base}/v3/kv/put", json={"key": _b64(key), "value": value, "lease": lease})
        script = tmp / "etcd-put.lua"
        script.write_text(LUA_B64 + ETCD_PUT_LUA)
        env = {"BENCH_LEASE": str(lease), "BENCH_VALUE": value}
        wrk(base, duration=2, connections=args.connections, script=script, env=env)
        result["register"] = wrk(
            base, duration=args.duration, connections=args.connections, script=script, env=env
        )
        prefix = "svc/MCPTT/svc-0/"
        body = json.dumps({"key": _b64(prefix), "range_end": _b64(prefix[:-1] + "0")})
        range_script = tmp / "etcd-range.lua"
        range_script.write_text(
            f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\nwrk.headers["Content-Type"] = "application/json"\n'
        )
        found = httpx.post(f"{base}/v3/kv/range", content=body).json()
        assert int(found.get("count", 0)) == 2, found
        wrk(f"{base}/v3/kv/range", duration=2, connections=args.connections, script=range_script)
        result["discover"] = wrk(
            f"{base}/v3/kv/range", duration=args.duration, connections=args.connections, script=range_script
        )
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    # asgate's register beside it: each request a new durable instance (POST /services).
    data_dir = fresh(tmp, "register")
    clients(data_dir, [])
    fill(data_dir, 10_000)
    script = data_dir / "register.lua"
    script.write_text(REGISTER_LUA)
    proc = start_asgate(data_dir, settings())
    try:
        env = {"BENCH_TOKEN": token("bench-svc", "svc-secret", "mcx-service-registration")}
        wrk(ROOT_URL, duration=2, connections=args.connections, script=script, env=env)
        result["asgate_register"] = wrk(
            ROOT_URL, duration=args.duration, connections=args.connections, script=script, env=env
        )
    finally:
        stop(proc)
    for name, run in result.items():
        print(
            f"  {name:16s} {run['requests_per_s']:8,.0f} req/s  p99 {run['p99_ms']:.2f} ms  non-2xx {run['non_2xx']}",
            flush=True,
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--duration", type=int, default=8, help="seconds per measured run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--apps", type=int, default=10_000, help="subscribed applications in the fan-out")
    parser.add_argument("--samples", type=int, default=200, help="propagation samples")
    args = parser.parse_args()
    require("nginx", "wrk", "taskset")
    report: dict[str, Any] = {"benchmark": "registry", "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="registry-bench-") as tmp_name, nginx(Path(tmp_name)):
        tmp = Path(tmp_name)
        for name in SCENARIOS:
            if name in args.scenarios:
                print(f"{name}:", flush=True)
                report[name] = globals()[name](tmp, args)
    out = write_results("registry", report)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
