"""``asgate demo``: every seed procedure, run against an asgate of its own and narrated step by
step as numbered in the seed figures, with what each party sent and received.

    TS 23.554 8.2.5 / 8.2.6   an Application Server registers with the MSGin5G Server, de-registers
    seed 10.X.3               an external application discovers MC services and is authorized
    seed 10.X.4               the administrator edits its profile; the application is notified
    seed 10.X.5               it reaches the services through the SAS for an MC user who signed in
                              at the login page: a refused request, priority, failover

The embedded asgate runs in this process on free ports (SQLite in a temporary directory), so the
demo runs beside ``make run`` and leaves nothing behind. The exit code is 0 when every step passed.
"""

from __future__ import annotations

import contextlib
import json

from rich.console import Console

from asgate.demo.external import external_application, set_policy
from asgate.demo.msgs import registration_and_deregistration
from asgate.demo.narrate import DemoFailed, Narrator
from asgate.demo.record import Journal
from asgate.demo.system import embedded_asgate
from asgate.samples import LOOPBACK_ALLOWED, SPECS

__all__ = ["run_demo"]


async def run_demo(console: Console, *, as_json: bool = False) -> int:
    """Run and narrate the procedures; 0 when every step passed, else 1 (the failed step printed)."""
    narrator = Narrator(console, as_json=as_json)
    journal = Journal()
    failed: DemoFailed | None = None
    try:
        async with contextlib.AsyncExitStack() as stack:
            narrator.procedure("setup", "An asgate of its own, provisioned", "asgate demo")
            async with narrator.step(0, "Start every role, the sample MC services, and provision") as step:
                system = await stack.enter_async_context(embedded_asgate(journal))
                samples = ", ".join(
                    f"{SPECS[r.service].service_type} {r.instance}" for r in system.samples.instances
                )
                step.note(f"control plane {system.url}, service access server {system.sas_url}")
                step.note(f"sample MC services registered through their agents: {samples}")
                step.note(f"SQLite in {system.settings.data_dir} (removed at the end)")
                step.note(LOOPBACK_ALLOWED)
                step.note(
                    "clients as-1 (AS Service ID AS1), console-1, samples, ops; MC user alice@mc.example"
                )
            await set_policy(system, narrator)
            await registration_and_deregistration(system, narrator)
            await external_application(system, narrator)
    except DemoFailed as exc:
        failed = exc
    report = narrator.report(failed)
    if as_json:
        console.print_json(json.dumps(report))
    return 0 if failed is None else 1
