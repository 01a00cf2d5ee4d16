"""docs/api.md against the code: every operation of every OpenAPI document asgate ships is described
in its API's section, and the walk-through of seed 10.X.3, 10.X.4 and 10.X.5 runs as written, with
curl and the administrator CLI, against a live ``asgate up``."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.live import free_port, live_server

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "api.md"
PACKAGE = ROOT / "src" / "asgate"
METHODS = ("get", "put", "post", "delete", "patch")
# Each document and the heading of its section in docs/api.md.
DOCUMENTS = {
    "msgin5g/admin-openapi.yaml": "## `msgs-admin/v1`",
    "registry/openapi/service-registration.yaml": "## `mcx-service-registration/v1`",
    "registry/openapi/registry.yaml": "## `mcx-registry/v1`",
    "registry/openapi/admin.yaml": "## `mcx-registry-admin/v1`",
    "registry/openapi/sync.yaml": "## `mcx-registry-sync/v1`",
    "access/openapi/access-profiles.yaml": "## `mcx-access-profiles/v1`",
}
WALK_THROUGH = "## Walk-through"


def section(heading: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(heading)
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_every_shipped_document_has_a_section() -> None:
    shipped = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.yaml")} - {
        "registry/openapi/common.yaml"  # shared types only, no paths
    }
    assert shipped == set(DOCUMENTS)


@pytest.mark.parametrize("document", sorted(DOCUMENTS))
def test_every_operation_is_documented(document: str) -> None:
    spec = yaml.safe_load((PACKAGE / document).read_text(encoding="utf-8"))
    text = section(DOCUMENTS[document])
    base = spec["servers"][0]["url"].removeprefix("{apiRoot}")
    assert f"`{base}`" in DOC.read_text(encoding="utf-8"), f"{base} is not in the table of APIs"
    missing = [
        f"{method.upper()} {path}"
        for path, item in spec["paths"].items()
        for method in METHODS
        if method in item and not re.search(rf"`{method.upper()} {re.escape(path)}[`?\[ ]", text)
    ]
    assert missing == [], f"not in {DOCUMENTS[document]!r} of docs/api.md"


def test_the_msgs_asregistration_operations_are_documented() -> None:
    text = section("## `msgs-asregistration/v1`")
    assert "### `POST /registrations`" in text
    assert "### `DELETE /registrations/{registrationId}`" in text


def walk_through_script(ports: dict[str, str]) -> str:
    """The ``sh`` blocks of the walk-through, in order, with the documented ports replaced."""
    script = "\n".join(re.findall(r"```sh\n(.*?)```", section(WALK_THROUGH), re.DOTALL))
    for documented, actual in ports.items():
        script = script.replace(documented, actual)
    return script


@pytest.mark.slow
@pytest.mark.timeout(360)
@pytest.mark.xdist_group("process")
def test_the_walk_through_runs_as_documented(tmp_path: Path) -> None:
    tools = ("curl", "jq", "openssl", "basenc")
    if any(shutil.which(tool) is None for tool in tools):
        pytest.skip(f"the walk-through needs {', '.join(tools)}")
    sas = free_port()
    with live_server(tmp_path / "data", sas_listen=f"127.0.0.1:{sas}") as server:
        ports = {
            "127.0.0.1:7480": server.url.removeprefix("http://"),
            "127.0.0.1:7481": f"127.0.0.1:{sas}",
            "9101": str(free_port()),
            "9200": str(free_port()),
        }
        env = server.env | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        log = tmp_path / "walk-through.log"
        with log.open("w") as out:  # a file, not a pipe: the heartbeat loop's sleep would hold a pipe open
            proc = subprocess.Popen(
                ["bash", "-eu", "-c", walk_through_script(ports)],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the sample, the receiver and the heartbeat loop go with it
            )
            try:
                proc.wait(timeout=240)  # a dozen CLI starts: slow on a busy machine
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        output = log.read_text()
    assert proc.returncode == 0, output[-4000:]
    expected = [
        "granted alice@mc.example for console-1",
        "HTTP/1.1 201 Created",  # 0: the GM service registered
        '"availableInstances": 1',  # 10.X.3 steps 1-2
        '"result": "SUCCESS"',  # steps 3-5
        f'"serviceLocationInformation": "http://127.0.0.1:{sas}/1"',
        "authorization.decide  service/GM/gms  ok",  # step 4
        '"version":2,"notificationId":1}',  # 10.X.4 step 2
        "DELIVERED",  # step 3
        '{"version":2,"maxPriority":"mcpttp.12"',  # steps 4-5
        '"cause":"PRECONDITION_FAILED"',
        "HTTP/1.1 303 See Other",  # the MC user signs in
        '"mcptt_id":"alice@mc.example"',
        "location: /1/groups/fire-1",  # 10.X.5 steps 1-5
        "resource-priority: mcpttp.9",
        "PRIORITY_NOT_AUTHORIZED",
        "RESOURCE_NOT_AUTHORIZED",
        "MC_USER_REQUIRED",
        '{"result":"SUCCESS","applicationProfiles":[]}',  # REMOVE
    ]
    position = 0
    for text in expected:
        found = output.find(text, position)
        assert found != -1, f"{text!r} missing (in order) from the walk-through's output:\n{output[-4000:]}"
        position = found
    assert output.rstrip().endswith(
        '{"title":"Forbidden","status":403,'
        '"detail":"no application profile with this index for this application",'
        '"cause":"PROFILE_NOT_AUTHORIZED"}'
    )
