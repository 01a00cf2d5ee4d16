"""deploy/Containerfile: the recipe's promises, checked without a container engine (non-root user,
pinned base, constraints, health check, ports, volumes), then kept by asgate itself: every server
role, the administrator commands and the migration run on a read-only root filesystem that lets
them write the data directory and TMPDIR alone, as the image's volumes do. Building and running the
image needs docker or podman: ASGATE_TEST_IMAGE=1 (it is slow)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from asgate.kernel.settings import Settings
from tests.live import ASGATE, free_port

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "deploy" / "Containerfile"
HEALTHCHECK = ROOT / "deploy" / "healthcheck.py"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the recipe, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", RECIPE.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def last(word: str) -> str:
    return [rest for w, rest in instructions() if w == word][-1]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    start = max(i for i, (w, _) in enumerate(steps) if w == "FROM")
    return steps[start:]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in final_stage():
        if word == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(rest)))
    return env


# ---------------------------------------------------------------- the recipe


def test_the_recipe_is_multi_stage_on_a_pinned_python_311_slim() -> None:
    base = [rest for word, rest in instructions() if word == "ARG" and rest.startswith("PYTHON_IMAGE=")]
    assert len(base) == 1
    image = base[0].removeprefix("PYTHON_IMAGE=")
    assert re.fullmatch(r"(docker\.io/library/)?python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image)
    stages = [rest for word, rest in instructions() if word == "FROM"]
    assert stages == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    # The runtime stage takes the built environment only.
    copies = [rest for word, rest in final_stage() if word == "COPY"]
    assert copies == ["--from=build /opt/asgate /opt/asgate"]
    build = " ".join(rest for word, rest in instructions() if word == "RUN")
    assert "-c constraints.txt" in build


def test_the_image_runs_as_a_fixed_non_root_user() -> None:
    user = last("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) >= 1000 and gid.isdigit() and int(gid) >= 1000
    # The same UID as the Kubernetes manifests and the folder it owns.
    assert f"--uid {uid}" in " ".join(rest for word, rest in final_stage() if word == "RUN")
    k8s = (ROOT / "deploy" / "k8s" / "control-plane.yaml").read_text(encoding="utf-8")
    assert f"runAsUser: {uid}" in k8s


def test_everything_asgate_writes_is_on_a_volume() -> None:
    env = image_env()
    volumes = json.loads(last("VOLUME"))
    assert set(volumes) == {"/var/lib/asgate", "/tmp"}  # noqa: S108 - the image's TMPDIR
    assert Path(env["ASGATE_DATA_DIR"]).parent == Path("/var/lib/asgate")
    assert env["TMPDIR"] == "/tmp" and env["HOME"] == "/var/lib/asgate"  # noqa: S108
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    for name in (n for n in env if n.startswith("ASGATE_")):
        assert name.removeprefix("ASGATE_").lower() in Settings.model_fields, name


def test_ports_health_check_and_entrypoint() -> None:
    env = image_env()
    control = int(env["ASGATE_LISTEN"].rpartition(":")[2])
    sas = int(env["ASGATE_SAS_LISTEN"].rpartition(":")[2])
    assert (control, sas) == (Settings().listen.port, Settings().sas_listen.port)
    assert last("EXPOSE").split() == [str(control), str(sas)]
    check = last("HEALTHCHECK")
    assert "CMD" in check and "healthcheck.py" in check and "curl" not in check
    assert json.loads(last("ENTRYPOINT")) == ["asgate"]


def test_the_build_context_lets_in_what_the_recipe_copies() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    allowed = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    assert patterns[0] == "*"  # everything else (.venv, .git, tests, data) stays out
    for word, rest in instructions():
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _target = rest.split()
            assert set(sources) <= allowed, sources


# ---------------------------------------------------------------- the health check


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_health_check_follows_the_control_plane(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASGATE_")}
    env |= {"ASGATE_DATA_DIR": str(tmp_path / "data"), "ASGATE_LISTEN": f"127.0.0.1:{port}"}
    env["ASGATE_SAS_LISTEN"] = f"127.0.0.1:{free_port()}"
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen([*ASGATE, "serve", "idm"], env=env, stdout=out, stderr=subprocess.STDOUT)
    check_env = {"PATH": os.environ["PATH"], "ASGATE_LISTEN": f"0.0.0.0:{port}"}
    try:
        _wait(
            lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200, server, log
        )
        check = subprocess.run(
            [sys.executable, str(HEALTHCHECK)], env=check_env, capture_output=True, timeout=30
        )
        assert check.returncode == 0, check.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    check = subprocess.run([sys.executable, str(HEALTHCHECK)], env=check_env, capture_output=True, timeout=30)
    assert check.returncode == 1 and b"unhealthy" in check.stderr


# ---------------------------------------------------------------- a read-only root filesystem


def readonly(argv: Sequence[str], writable: Sequence[Path]) -> list[str]:
    """``argv`` in a mount namespace whose root filesystem is read-only but for ``writable``."""
    binds = "".join(f"mount --bind {shlex.quote(str(p))} {shlex.quote(str(p))}; " for p in writable)
    script = f'set -e; {binds}mount -o remount,bind,ro /; exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", *argv]


def _namespaces_work(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(readonly(["true"], [tmp_path]), capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.fixture
def volumes(tmp_path: Path) -> Iterator[dict[str, Path]]:
    if not _namespaces_work(tmp_path):
        pytest.skip("needs root and mount namespaces (unshare) to make the root filesystem read-only")
    paths = {"volume": tmp_path / "volume", "tmp": tmp_path / "tmp", "cwd": tmp_path / "cwd"}
    for path in paths.values():
        path.mkdir()
    yield paths


def test_the_read_only_root_really_refuses_writes(volumes: dict[str, Path]) -> None:
    """The harness itself: a write outside the volumes fails."""
    for target in ("/var/tmp/asgate-probe", str(volumes["cwd"] / "x")):
        attempt = subprocess.run(
            readonly([sys.executable, "-c", f"open({target!r}, 'w')"], [volumes["volume"], volumes["tmp"]]),
            capture_output=True,
            timeout=30,
        )
        assert attempt.returncode != 0 and b"Read-only file system" in attempt.stderr
    attempt = subprocess.run(
        readonly(["touch", str(volumes["volume"] / "x")], [volumes["volume"], volumes["tmp"]]), timeout=30
    )
    assert attempt.returncode == 0


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.xdist_group("process")
def test_every_role_runs_with_a_read_only_root(volumes: dict[str, Path], database: dict[str, Any]) -> None:
    writable = [volumes["volume"], volumes["tmp"]]
    control, sas = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASGATE_")}
    env |= {
        "ASGATE_DATA_DIR": str(volumes["volume"] / "data"),  # as the image: a folder in the volume
        "ASGATE_LISTEN": f"127.0.0.1:{control}",
        "ASGATE_SAS_LISTEN": f"127.0.0.1:{sas}",
        "ASGATE_SAS_WORKERS": "2",  # the worker processes and the state file they follow
        "ASGATE_LOG_LEVEL": "info",
        "HOME": str(volumes["volume"]),
        "TMPDIR": str(volumes["tmp"]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if "database_schema" in database:  # PostgreSQL; on SQLite the image's default file in the data dir
        env |= {
            "ASGATE_DATABASE_URL": database["database_url"],
            "ASGATE_DATABASE_SCHEMA": database["database_schema"],
        }

    def asgate(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            readonly([*ASGATE, *args], writable),
            env=env,
            cwd=volumes["cwd"],
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Read-only file system" not in done.stderr
        return done

    assert "upgraded" in asgate("db", "upgrade").stdout  # the migration Job
    log = volumes["cwd"].parent / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            readonly([*ASGATE, "up"], writable),
            env=env,
            cwd=volumes["cwd"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{control}"
        _wait(lambda: httpx.get(f"{url}/healthz", timeout=1).status_code == 200, server, log)
        _wait(lambda: httpx.get(f"http://127.0.0.1:{sas}/healthz", timeout=1).status_code == 200, server, log)

        # Administrator commands (kubectl exec, a systemd ExecStart) and the API: clients, keys,
        # tokens, an AS registration through the group commit.
        secret = re.search(
            r"client_secret: (\S+)",
            asgate("clients", "add", "as-1", "--scope", "msgs-asregistration", "--as-svc-id", "AS1").stdout,
        )
        assert secret
        asgate("keys", "rotate")
        token = httpx.post(
            f"{url}/oauth2/token", data={"grant_type": "client_credentials"}, auth=("as-1", secret.group(1))
        ).json()["access_token"]
        created = httpx.post(
            f"{url}/msgs-asregistration/v1/registrations",
            json={"asSvcId": "AS1", "asProf": {"appName": "ro"}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert created.status_code == 201, created.text
        health = subprocess.run(
            readonly([sys.executable, str(HEALTHCHECK)], writable),
            env={"PATH": env["PATH"], "ASGATE_LISTEN": env["ASGATE_LISTEN"]},
            capture_output=True,
            timeout=30,
        )
        assert health.returncode == 0, health.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    output = log.read_text(errors="replace")
    assert code == 0, output[-3000:]
    assert "Read-only file system" not in output and "Errno 30" not in output, output[-3000:]
    assert (volumes["volume"] / "data").is_dir()


def _wait(ready: Any, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    """Until ``ready()``; generous: the workers of a loaded 2-core machine take 20 s to start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not ready:\n{log.read_text()[-3000:]}")


# ---------------------------------------------------------------- the image itself (opt-in)

ENGINE = shutil.which("docker") or shutil.which("podman")


def _engine_ready() -> bool:
    if os.environ.get("ASGATE_TEST_IMAGE") != "1" or ENGINE is None:
        return False
    return subprocess.run([ENGINE, "info"], capture_output=True, timeout=30).returncode == 0


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(not _engine_ready(), reason="ASGATE_TEST_IMAGE=1 and a running docker or podman")
def test_the_image_builds_and_becomes_healthy_on_a_read_only_root(tmp_path: Path) -> None:
    assert ENGINE is not None
    tag = "asgate:test"
    subprocess.run([ENGINE, "build", "-f", str(RECIPE), "-t", tag, str(ROOT)], check=True, timeout=1500)
    name = f"asgate-test-{os.getpid()}"
    subprocess.run(
        [ENGINE, "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
         "--security-opt", "no-new-privileges", "-v", f"{name}:/var/lib/asgate", tag, "up"],
        check=True,
        timeout=60,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        status = ""
        while time.monotonic() < deadline and status != "healthy":
            time.sleep(2)
            status = subprocess.run(
                [ENGINE, "inspect", "--format", "{{.State.Health.Status}}", name],
                capture_output=True, text=True, timeout=30,
            ).stdout.strip()  # fmt: skip
        logs = subprocess.run([ENGINE, "logs", name], capture_output=True, text=True, timeout=30)
        assert status == "healthy", logs.stdout + logs.stderr
        user = subprocess.run([ENGINE, "exec", name, "id", "-u"], capture_output=True, text=True, timeout=30)
        assert user.stdout.strip() == "10001"
    finally:
        subprocess.run([ENGINE, "rm", "-f", name], capture_output=True, timeout=60)
        subprocess.run([ENGINE, "volume", "rm", "-f", name], capture_output=True, timeout=60)
