"""The image's HEALTHCHECK: exit 0 when the control plane's ``/healthz`` answers 200, else 1.

Standard library only (the image has no curl). The URL is ``HEALTHCHECK_URL`` when set, else
``http://127.0.0.1:PORT/healthz`` with the port of ``ASGATE_LISTEN`` (``https`` when
``ASGATE_TLS_CERT`` is set; the certificate is not verified: the check talks to its own process).
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request


def url() -> str:
    explicit = os.environ.get("HEALTHCHECK_URL")
    if explicit:
        return explicit
    port = os.environ.get("ASGATE_LISTEN", "127.0.0.1:7480").rpartition(":")[2] or "7480"
    scheme = "https" if os.environ.get("ASGATE_TLS_CERT") else "http"
    return f"{scheme}://127.0.0.1:{port}/healthz"


def main() -> int:
    target = url()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # its own process, on loopback
    try:
        with urllib.request.urlopen(target, timeout=4, context=context) as answer:  # noqa: S310
            healthy = answer.status == 200
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"unhealthy: {target}: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    if not healthy:
        print(f"unhealthy: {target}: status {answer.status}", file=sys.stderr)  # noqa: T201
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
