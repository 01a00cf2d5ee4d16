"""Telling the procedures: numbered steps as in the seed figures, each with what was sent and
received, ✓ or ✗; ``--json`` gives the same as one document.

A step is an ``async with narrator.step(N, "...") as step:`` block; an error in it (a failed check,
a ProblemError, a network error, a timeout) fails the step and ends the demo.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape

from asgate.demo.record import Exchange
from asgate.kernel.problem import ProblemError

_BODY = 110  # characters of a body shown on one line
_SHOWN_HEADERS = ("location", "resource-priority", "x-sample-instance", "asgate-sequence")


class StepFailed(Exception):
    """A check of a step did not hold; the message says what was expected."""


# What fails a step: its checks, the servers' errors, the network, waiting too long.
_FAILURES = (StepFailed, ProblemError, httpx.HTTPError, TimeoutError, LookupError, OSError, ValueError)


class DemoFailed(Exception):
    """The demo stopped at a failed step."""

    def __init__(self, step: StepRecord) -> None:
        super().__init__(f"{step.label} failed: {step.error}")
        self.step = step


@dataclass
class StepRecord:
    procedure: str
    number: int
    title: str
    ok: bool | None = None
    error: str | None = None
    lines: list[str] = field(default_factory=list)  # rich markup
    notes: list[str] = field(default_factory=list)
    exchanges: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.procedure} step {self.number}"

    def summary(self) -> dict[str, Any]:
        return {
            "step": self.number,
            "title": self.title,
            "ok": self.ok,
            "error": self.error,
            "notes": self.notes,
            "exchanges": self.exchanges,
        }


@dataclass
class ProcedureRecord:
    id: str
    title: str
    source: str
    steps: list[StepRecord] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "procedure": self.id,
            "title": self.title,
            "source": self.source,
            "steps": [s.summary() for s in self.steps],
        }


class StepView:
    """What a running step shows: exchanges (sent ``→``, received ``←``) and notes."""

    def __init__(self, record: StepRecord) -> None:
        self.record = record

    def sent(self, exchange: Exchange) -> None:
        self._keep(exchange)
        priority = exchange.request_headers.get("resource-priority")
        extra = f"  [magenta]Resource-Priority: {escape(priority)}[/]" if priority else ""
        body = _short_request(exchange)
        target = escape(_short(exchange.path, 90))
        line = f"[cyan]{escape(exchange.actor)}[/] → [bold]{exchange.method}[/] {target}{extra}"
        self.record.lines.append(line + (f"\n      [dim]{escape(body)}[/]" if body else ""))

    def received(self, exchange: Exchange) -> None:
        self._keep(exchange)
        colour = "green" if exchange.status < 400 else "red"
        headers = "  ".join(
            f"[magenta]{name.title()}: {escape(_short(exchange.response_headers[name], 70))}[/]"
            for name in _SHOWN_HEADERS
            if name in exchange.response_headers
        )
        problem = exchange.response_json if exchange.status >= 400 else None
        if isinstance(problem, dict) and "cause" in problem:  # a ProblemDetails: its cause first
            headers = f"[{colour}]{escape(str(problem['cause']))}[/]  {headers}".rstrip()
        body = _short_response(exchange)
        line = f"[cyan]{escape(exchange.actor)}[/] ← [{colour}]{exchange.status}[/]"
        line += f"  {headers}" if headers else ""
        self.record.lines.append(line + (f"\n      [dim]{escape(body)}[/]" if body else ""))

    def exchange(self, exchange: Exchange) -> None:
        self.sent(exchange)
        self.received(exchange)

    def note(self, text: str) -> None:
        self.record.notes.append(text)
        self.record.lines.append(f"· {escape(text)}")

    def check(self, condition: object, expected: str) -> None:
        if not condition:
            raise StepFailed(expected)

    def _keep(self, exchange: Exchange) -> None:
        summary = exchange.summary()
        if summary not in self.record.exchanges:
            self.record.exchanges.append(summary)


class Narrator:
    """Prints each step as it completes (unless ``json``); keeps everything for :meth:`report`."""

    def __init__(self, console: Console, *, as_json: bool = False) -> None:
        self.console = console
        self.as_json = as_json
        self.procedures: list[ProcedureRecord] = []
        self.started = time.monotonic()

    def say(self, markup: str) -> None:
        if not self.as_json:
            self.console.print(markup, highlight=False)

    def procedure(self, id: str, title: str, source: str) -> None:
        self.procedures.append(ProcedureRecord(id, title, source))
        self.say(f"\n[bold]━━ {id}  {escape(title)}[/]  [dim]({escape(source)})[/]")

    @asynccontextmanager
    async def step(self, number: int, title: str) -> AsyncIterator[StepView]:
        procedure = self.procedures[-1]
        record = StepRecord(procedure.id, number, title)
        procedure.steps.append(record)
        try:
            yield StepView(record)
        except _FAILURES as exc:
            record.ok, record.error = False, _describe(exc)
            self._print(record)
            raise DemoFailed(record) from exc
        record.ok = True
        self._print(record)

    def _print(self, record: StepRecord) -> None:
        mark = "[green]✓[/]" if record.ok else "[red]✗[/]"
        number = record.number or "·"  # 0: a preparation, no step of the figure
        self.say(f" {mark} [bold]{number}[/]  {escape(record.title)}")
        for line in record.lines:
            self.say(f"      {line}")
        if record.error:
            self.say(f"      [red]failed: {escape(record.error)}[/]")

    @property
    def steps(self) -> list[StepRecord]:
        return [s for p in self.procedures for s in p.steps]

    def report(self, failed: DemoFailed | None) -> dict[str, Any]:
        elapsed = round(time.monotonic() - self.started, 1)
        passed = sum(1 for s in self.steps if s.ok)
        if failed is None:
            self.say(
                f"\n[green bold]✓ all {passed} steps of {len(self.procedures)} procedures passed[/]"
                f" in {elapsed} s"
            )
        else:
            self.say(f"\n[red bold]✗ {escape(str(failed))}[/] ({passed} steps passed before it)")
        return {
            "ok": failed is None,
            "failed": failed.step.label if failed else None,
            "error": failed.step.error if failed else None,
            "seconds": elapsed,
            "procedures": [p.summary() for p in self.procedures],
        }


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _short(text: str, limit: int = _BODY) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short_request(exchange: Exchange) -> str:
    return _short(exchange.request_text()) if exchange.request_body else ""


def _short_response(exchange: Exchange) -> str:
    if exchange.response_json is None and "html" in exchange.response_headers.get("content-type", ""):
        title = re.search(r"<title>(.*?)</title>", exchange.response_body.decode("utf-8", "replace"))
        return f"[HTML page: {title.group(1) if title else 'untitled'}]"
    return _short(exchange.response_text()) if exchange.response_body else ""
