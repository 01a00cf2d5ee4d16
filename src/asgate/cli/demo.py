"""``asgate demo``: every seed procedure against an asgate of its own, narrated step by step."""

from __future__ import annotations

import asyncio
import sys

import click
import uvloop
from rich.console import Console

from asgate.kernel import logs


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document with every step and exchange.")
def demo(as_json: bool) -> None:
    """Run TS 23.554 8.2.5/8.2.6 and seed 10.X.3-10.X.5 end to end and narrate every step.

    It starts an asgate of its own in this process (every role, SQLite in a temporary directory,
    free ports: it runs beside `asgate up`), the sample MC services, and provisions an Application
    Server, an external application, its policy and an MC user. Each step shows what was sent and
    received. The exit code is 1 if a step failed (it is named).

    \b
    $ asgate demo
    $ asgate demo --json | jq '.procedures[].steps[] | select(.ok | not)'
    """
    from asgate.demo import run_demo

    logs.configure("error", "console")  # the narration is the output; the servers keep quiet
    console = Console(
        file=sys.stdout, width=None if sys.stdout.isatty() else 120, highlight=False, soft_wrap=False
    )
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        code = runner.run(run_demo(console, as_json=as_json))
    sys.exit(code)
