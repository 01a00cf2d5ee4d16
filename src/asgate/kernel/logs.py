"""Structured logs (structlog), one line per request with the request id: human-readable on a
terminal, JSON lines otherwise (``log_format``)."""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog


def resolve_format(setting: str, terminal: bool) -> Literal["json", "console"]:
    """``log_format``: ``auto`` is ``console`` when the logs go to a terminal (a person reads them)
    and ``json`` otherwise (a file, a pipe, a log collector); ``json`` and ``console`` are forced."""
    if setting == "console" or (setting == "auto" and terminal):
        return "console"
    return "json"


def configure(level: str = "info", fmt: str = "auto") -> None:
    """Route structlog and the standard library (uvicorn, SQLAlchemy) to stderr in one format."""
    resolved = resolve_format(fmt, sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if resolved == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # we log requests ourselves
    # Library chatter that says nothing to an operator: alembic's plugin set-up and httpx's line per
    # outgoing request (our own request and delivery logs say what matters).
    for name in ("alembic.runtime.plugins", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def get(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
