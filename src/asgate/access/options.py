"""Engine limits and timeouts, one frozen object built once (from Settings or by hand in tests)."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from asgate.kernel.settings import Settings


@dataclass(frozen=True, slots=True)
class EngineOptions:
    # Downstream (client-facing) limits.
    max_url_bytes: int = 8192
    max_header_bytes: int = 16384
    max_headers: int = 100
    header_timeout: float = 10.0  # from the first byte of a request to the end of its head
    idle_timeout: float = 60.0  # keep-alive idle; also the longest silence inside a request body
    max_connections: int = 10_000
    max_connections_per_source: int = 256
    # Absolute-form targets (RFC 9112 3.2.2) are accepted only for these authorities.
    authorities: frozenset[str] = frozenset()
    scheme: str = "http"
    # How often deadlines are checked; every timeout is accurate to about this much.
    tick: float = 0.25
    shutdown_grace: float = 10.0
    # HTTP/2 (asgate.access.http2): h2c with prior knowledge, and "h2" offered by ALPN over TLS.
    http2: bool = True
    h2_max_streams: int = 100  # SETTINGS_MAX_CONCURRENT_STREAMS; a stream past it: REFUSED_STREAM
    # Per connection and window: more client RST_STREAMs (rapid reset) or control frames (PING,
    # SETTINGS, PRIORITY, empty DATA, tiny WINDOW_UPDATE) than this: GOAWAY ENHANCE_YOUR_CALM.
    h2_max_resets: int = 200
    h2_max_control_frames: int = 200
    h2_flood_window: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineOptions:
        listen = settings.sas_listen
        return cls(
            max_url_bytes=settings.sas_max_url_bytes,
            max_header_bytes=settings.sas_max_header_bytes,
            max_headers=settings.sas_max_headers,
            header_timeout=settings.sas_header_timeout,
            idle_timeout=settings.sas_idle_timeout,
            max_connections=settings.sas_max_connections,
            max_connections_per_source=settings.sas_max_connections_per_source,
            authorities=frozenset({str(listen), *settings.sas_public_authorities}),
            scheme="https" if settings.tls else "http",
            shutdown_grace=settings.sas_shutdown_grace,
            http2=settings.sas_http2,
            h2_max_streams=settings.sas_h2_max_streams,
            h2_max_resets=settings.sas_h2_max_resets,
            h2_max_control_frames=settings.sas_h2_max_control_frames,
        )


@dataclass(frozen=True, slots=True)
class PoolOptions:
    connect_timeout: float = 2.0
    response_timeout: float = 30.0  # request fully sent -> response head received
    read_timeout: float = 60.0  # longest silence inside a response body
    idle_timeout: float = 30.0  # an unused pooled keep-alive connection is closed after this
    max_idle_per_instance: int = 64
    eject_after: int = 3  # consecutive failures before an instance is ejected...
    eject_seconds: float = 10.0  # ...for this long
    max_attempts: int = 3  # instances tried for one request
    # host, port -> the address to connect to, once the instance address policy allowed it
    resolve: Callable[[str, int], Awaitable[str]] | None = None
    # For instances registered with protocol HTTPS or WSS: the CA bundle they are verified with and
    # the SAS's client certificate (mutual TLS). None: the system's CAs, no client certificate.
    tls: ssl.SSLContext | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> PoolOptions:
        from asgate.kernel.resolver import connect_address
        from asgate.kernel.uripolicy import instance_policy

        tls = None
        if settings.sas_upstream_ca or settings.sas_upstream_client_cert:
            tls = upstream_tls(
                settings.sas_upstream_ca, settings.sas_upstream_client_cert, settings.sas_upstream_client_key
            )
        return cls(
            resolve=partial(connect_address, instance_policy(settings)),
            tls=tls,
            connect_timeout=settings.sas_upstream_connect_timeout,
            response_timeout=settings.sas_upstream_response_timeout,
            read_timeout=settings.sas_upstream_read_timeout,
            idle_timeout=settings.sas_upstream_idle_timeout,
            eject_after=settings.sas_upstream_eject_after,
            eject_seconds=settings.sas_upstream_eject_seconds,
        )


def upstream_tls(ca: Path | None, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """The client context of the SAS towards https instances: server certificates verified (against
    ``ca`` or the system's CAs, host name or IP address checked), TLS 1.2 at least, and the SAS's
    own certificate when ``cert`` is given, for instances that require mutual TLS."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca) if ca else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key else None)
    return context
