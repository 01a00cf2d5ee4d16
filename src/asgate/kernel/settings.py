"""Settings: built once from defaults < TOML file < ``ASGATE_*`` environment < command-line overrides.

This is the only module that reads ``os.environ``. A bad or missing setting raises
:class:`SettingsError`, whose message names the environment variable and the TOML key.
"""

from __future__ import annotations

import base64
import contextvars
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings import SettingsError as PydanticSettingsError

ENV_PREFIX = "ASGATE_"

# Never a sensible callback target or MC service instance (the classic SSRF holes): loopback (the
# server itself), link-local (169.254.169.254 metadata, fe80::/10), "this network" and unspecified,
# multicast, reserved and broadcast (240.0.0.0/4 includes 255.255.255.255), and cloud metadata
# services outside those ranges. Private ranges stay allowed: MC networks are private.
LOOPBACK_HOSTS = ("127.0.0.0/8", "::1/128", "localhost", "*.localhost")
METADATA_HOSTS = (
    "fd00:ec2::254/128",  # AWS IMDS over IPv6
    "100.100.100.200/32",  # Alibaba Cloud
    "192.0.0.192/32",  # Oracle Cloud
    "168.63.129.16/32",  # Azure WireServer
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.tencentyun.com",
)
DEFAULT_DENY_HOSTS = (
    *LOOPBACK_HOSTS,
    "0.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "fe80::/10",
    "ff00::/8",
    *METADATA_HOSTS,
)

_toml_values: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "_toml_values", default=None
)


class SettingsError(Exception):
    """A setting is missing or invalid; the message names it."""


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]


class HostPort(BaseModel):
    model_config = ConfigDict(frozen=True)
    host: str
    port: int = Field(ge=0, le=65535)

    @classmethod
    def parse(cls, text: str) -> HostPort:
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"expected HOST:PORT, got {text!r}")
        host = host.strip("[]") or "127.0.0.1"
        return cls(host=host, port=int(port))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


JwsAlgorithm = Literal[
    "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"
]


class TrustedIssuer(BaseModel):
    """An external OpenID Connect / OAuth2 issuer whose tokens the APIs accept."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    issuer: str
    jwks_uri: str
    audience: str | None = None
    # RFC 8725 3.1: the algorithms this issuer's tokens may use; None: what each JWK is for.
    algorithms: list[JwsAlgorithm] | None = None
    # RFC 9068 2.1: access tokens typed at+jwt. False accepts untyped or "JWT" tokens from an
    # issuer that does not type them (never an ID token, never another explicit type).
    require_at_jwt: bool = True


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")
    _config_file: Path | None = PrivateAttr(default=None)

    # --- where things live
    data_dir: Path = Path(".asgate")
    database_url: str | None = None
    database_schema: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    sqlite_synchronous: Literal["FULL", "EXTRA", "NORMAL"] = "FULL"
    database_pool_size: int = Field(default=10, ge=1, le=200)

    # --- listeners
    listen: Annotated[HostPort, NoDecode] = HostPort(host="127.0.0.1", port=7480)
    api_root: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None

    # --- tokens
    issuer: str | None = None
    token_audience: str = "asgate"  # noqa: S105
    token_ttl: int = Field(default=3600, ge=60, le=86400)
    trusted_issuers: list[TrustedIssuer] = []
    # Signing keys live in the database, sealed with this AES-256 key (base64 of 32 bytes), or the
    # one in key_encryption_key_file; neither: {data_dir}/kek, created on first start.
    key_encryption_key: SecretStr | None = None
    key_encryption_key_file: Path | None = None
    signing_key_publish_delay: float = Field(default=5.0, ge=0, le=3600)  # published, then signs

    # --- identity management (MC users): asgate.idm (TS 33.180 Annex B, OIDC for MC users)
    idm_user_token_ttl: int = Field(default=900, ge=60, le=86400)  # user access and ID tokens
    idm_refresh_token_ttl: int = Field(default=28800, ge=60, le=30 * 86400)  # each refresh token
    idm_session_ttl: int = Field(default=7 * 86400, ge=60, le=365 * 86400)  # a login's refresh chain
    idm_code_ttl: int = Field(default=60, ge=1, le=600)  # RFC 6749 4.1.2: 10 minutes at most
    idm_login_ttl: int = Field(default=600, ge=10, le=3600)  # a login page's request handle
    idm_login_max_failures: int = Field(default=5, ge=1, le=1000)  # per user name and window
    idm_login_max_failures_per_source: int = Field(default=20, ge=1, le=100_000)  # per client address
    idm_login_window: int = Field(default=60, ge=1, le=86400)  # seconds
    # Token endpoint brute force (issue 8): failed client authentications per client id and per
    # source address in idm_token_window; past either, 429 before any secret is hashed.
    idm_token_max_failures: int = Field(default=10, ge=1, le=100_000)
    idm_token_max_failures_per_source: int = Field(default=50, ge=1, le=1_000_000)
    idm_token_window: int = Field(default=60, ge=1, le=86400)  # seconds
    idm_refusal_hold: float = Field(default=1.0, ge=0, le=60)  # a throttled 429 is held this long
    idm_hash_concurrency: int | None = Field(default=None, ge=1, le=256)  # Argon2 at once; None: cores - 1
    idm_redis_url: str | None = None  # share the failure counters of every IdM process
    # --- end of identity management (MC users)

    # --- MSGin5G AS registration (TS 29.538)
    msgs_delete_status: Literal[200, 204] = 200
    msgs_mtls_only: bool = False

    # --- service registry server: asgate.registry (seed 7.4.2.2.9, CSC-14, CSC-15)
    registry_missed_heartbeats: int = Field(default=3, ge=1, le=100)
    registry_removal_grace: float = Field(default=60.0, ge=0, le=86400)
    registry_sweep_interval: float = Field(default=1.0, gt=0, le=60)
    registry_sas_url: str | None = None  # service location for untrusted apps; default http://{sas_listen}
    registry_sas_push_urls: CsvList = []  # static CSC-15 targets besides the registered access servers
    registry_sas_clients: CsvList = ["asgate-access-*"]  # who may register an access server (globs)
    registry_sas_max: int = Field(default=64, ge=1, le=10_000)  # access servers registered at once
    registry_sas_timeout: float = Field(default=30.0, ge=3, le=3600)  # silent this long: not pushed to
    registry_sas_lease: float = Field(default=15.0, ge=1, le=600)  # a process's hold on pushing to one SAS
    registry_sas_check_interval: float = Field(default=10.0, gt=0, le=3600)  # compare each SAS's sequence
    registry_sas_ack_wait: float = Field(default=2.0, ge=0, le=30)  # authorization waits for the SAS acks
    registry_notify_timeout: float = Field(default=5.0, gt=0, le=120)
    registry_notify_concurrency: int = Field(default=64, ge=1, le=1024)
    registry_retry_base: float = Field(default=1.0, gt=0, le=3600)
    registry_retry_max: float = Field(default=300.0, gt=0, le=86400)
    # Without a wake-up, how often to look for notifications due and other processes' changes.
    registry_poll_interval: float = Field(default=0.5, gt=0, le=300)
    # --- end of service registry server

    # --- outbound URI policy (targetUri, notificationDestination)
    outbound_schemes: CsvList = ["http", "https"]
    outbound_allow_hosts: CsvList = []
    outbound_deny_hosts: CsvList = list(DEFAULT_DENY_HOSTS)
    outbound_allow_loopback: bool = False  # a lab, the samples: lifts loopback from the deny list
    # --- instance address policy (ipv4Addr, ipv6Addr, fqdn of MC service registrations)
    instance_allow_hosts: CsvList = []
    instance_deny_hosts: CsvList = list(DEFAULT_DENY_HOSTS)
    instance_allow_loopback: bool = False

    # --- HTTP hygiene and operations
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    metrics_public: bool = False
    # The official 3GPP OpenAPI files (TS29538_MSGS_ASRegistration.yaml and what it references, from
    # the 3GPP Forge): /docs serves them when given; they are not shipped (© 3GPP).
    docs_3gpp_dir: Path | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"  # auto: console on a terminal, else json

    # --- service access server (data plane): asgate.access.options reads these
    sas_listen: Annotated[HostPort, NoDecode] = HostPort(host="127.0.0.1", port=7481)
    sas_public_authorities: CsvList = []  # absolute-form targets accepted besides sas_listen
    sas_workers: int = Field(default=1, ge=1, le=64)
    sas_max_url_bytes: int = Field(default=8192, ge=256, le=65536)
    sas_max_header_bytes: int = Field(default=16384, ge=1024, le=262144)
    sas_max_headers: int = Field(default=100, ge=8, le=1000)
    sas_header_timeout: float = Field(default=10.0, gt=0, le=300)
    sas_idle_timeout: float = Field(default=60.0, gt=0, le=3600)
    sas_max_connections: int = Field(default=10000, ge=1)
    sas_max_connections_per_source: int = Field(default=256, ge=1)
    sas_max_inflight: int = Field(default=1024, ge=1)
    sas_queue_size: int = Field(default=256, ge=0)
    sas_queue_timeout: float = Field(default=2.0, ge=0, le=60)
    sas_refusal_hold: float = Field(default=1.0, ge=0, le=60)  # after a 429/503: read that connection later
    sas_upstream_connect_timeout: float = Field(default=2.0, gt=0, le=60)
    sas_upstream_response_timeout: float = Field(default=30.0, gt=0, le=3600)
    sas_upstream_read_timeout: float = Field(default=60.0, gt=0, le=3600)
    sas_upstream_idle_timeout: float = Field(default=30.0, gt=0, le=3600)
    sas_upstream_eject_after: int = Field(default=3, ge=1, le=100)
    sas_upstream_eject_seconds: float = Field(default=10.0, ge=0, le=3600)
    sas_redis_url: str | None = None
    sas_redis_fail_open: bool = True
    sas_shutdown_grace: float = Field(default=10.0, ge=0, le=600)
    sas_max_body_bytes: int = Field(default=16 * 1_048_576, ge=1024)
    sas_max_ws_message_bytes: int = Field(default=1_048_576, ge=1024)
    sas_http2: bool = True  # h2c with prior knowledge; "h2" by ALPN when tls_cert is set
    sas_h2_max_streams: int = Field(default=100, ge=1, le=1000)  # SETTINGS_MAX_CONCURRENT_STREAMS
    sas_h2_max_resets: int = Field(default=200, ge=1)  # client RST_STREAMs per 10 s, then GOAWAY
    sas_h2_max_control_frames: int = Field(default=200, ge=10)  # PING/SETTINGS/empty DATA... per 10 s
    sas_registry_url: str | None = None  # where the SAS pulls snapshots; default: this control plane
    # Issue 10: a SAS with a registry elsewhere registers itself there, and heartbeats.
    sas_register: bool = True
    sas_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    sas_csc15_url: str | None = None  # where the registry pushes CSC-15; default: this control plane
    sas_heartbeat_interval: float = Field(default=10.0, gt=0, le=3600)
    # What the SAS tells MC services (seed 10.X.5 step 3): asgate.access.assertion
    sas_assertion_issuer: str | None = None  # default: {issuer}/sas
    sas_assertion_ttl: int = Field(default=30, ge=10, le=60)
    sas_forward_user_token: CsvList = []  # pools (TYPE/name globs) that also get the user's token
    sas_upstream_ca: Path | None = None  # CA bundle for https instances; default: the system's
    sas_upstream_client_cert: Path | None = None  # the SAS's client certificate (mutual TLS)
    sas_upstream_client_key: Path | None = None
    sas_csc15_clients: CsvList = ["asgate-registry"]  # who may change the SAS's state over CSC-15
    sas_csc15_max_body_bytes: int = Field(default=8 * 1_048_576, ge=65536, le=256 * 1_048_576)
    sas_profile_fetch_rate: float = Field(default=20.0, ge=0, le=10_000)  # fetches/s on a miss; 0: off
    sas_profile_fetch_negative_ttl: float = Field(default=2.0, ge=0, le=300)

    @field_validator("sas_listen", mode="before")
    @classmethod
    def _sas_host_port(cls, value: Any) -> Any:
        return HostPort.parse(value) if isinstance(value, str) else value

    @field_validator("sas_forward_user_token")
    @classmethod
    def _pool_patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if pattern.count("/") != 1 or not all(pattern.split("/")):
                raise ValueError(f"expected serviceType/serviceName patterns (CM/*), got {pattern!r}")
        return value

    @field_validator("sas_public_authorities", "sas_forward_user_token", "sas_csc15_clients", mode="before")
    @classmethod
    def _sas_csv(cls, value: Any) -> Any:
        return _split_csv(value)

    # --- end of service access server (data plane)

    @field_validator(
        "outbound_schemes",
        "outbound_allow_hosts",
        "outbound_deny_hosts",
        "instance_allow_hosts",
        "instance_deny_hosts",
        "registry_sas_push_urls",
        "registry_sas_clients",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("listen", mode="before")
    @classmethod
    def _host_port(cls, value: Any) -> Any:
        return HostPort.parse(value) if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for plain, driver in (
            ("postgres://", "postgresql+asyncpg://"),
            ("postgresql://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if value.startswith(plain):
                return driver + value[len(plain) :]
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("api_root", "issuer", "sas_assertion_issuer")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @field_validator(
        "tls_cert",
        "tls_key",
        "tls_client_ca",
        "sas_upstream_ca",
        "sas_upstream_client_cert",
        "sas_upstream_client_key",
    )
    @classmethod
    def _file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value

    @field_validator("docs_3gpp_dir")
    @classmethod
    def _dir_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"directory not found: {value}")
        return value

    @field_validator("key_encryption_key")
    @classmethod
    def _kek(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            decode_kek(value.get_secret_value())  # the reason names no byte of the key
        return value

    @model_validator(mode="after")
    def _one_kek(self) -> Settings:
        if self.key_encryption_key is not None and self.key_encryption_key_file is not None:
            raise ValueError("give key_encryption_key or key_encryption_key_file, not both")
        return self

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca needs tls_cert and tls_key")
        if self.msgs_mtls_only and self.tls_client_ca is None:
            raise ValueError("msgs_mtls_only needs tls_client_ca (mutual TLS)")
        return self

    @model_validator(mode="after")
    def _sas_upstream_trust(self) -> Settings:
        if (self.sas_upstream_client_cert is None) != (self.sas_upstream_client_key is None):
            raise ValueError("sas_upstream_client_cert and sas_upstream_client_key must be given together")
        # An assertion must never pass for an access token: its issuer is never one the APIs trust.
        trusted = {self.token_issuer, *(t.issuer.rstrip("/") for t in self.trusted_issuers)}
        if self.sas_issuer in trusted:
            raise ValueError("sas_assertion_issuer must differ from issuer and every trusted issuer")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = InitSettingsSource(settings_cls, init_kwargs=_toml_values.get() or {})
        return (init_settings, env_settings, toml)

    # --- derived values
    @property
    def config_file(self) -> Path | None:
        """The TOML file these settings were read from (other processes of this server read it too)."""
        return self._config_file

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'asgate.db'}"

    @property
    def keys_dir(self) -> Path:
        """Where asgate kept signing keys before issue 10: imported into the store on first start."""
        return self.data_dir / "keys"

    @property
    def kek_file(self) -> Path:
        """The key-encryption key's file: ``key_encryption_key_file``, else ``{data_dir}/kek``."""
        return self.key_encryption_key_file or self.data_dir / "kek"

    @property
    def public_root(self) -> str:
        """Where clients reach the control plane: ``api_root`` or derived from ``listen``."""
        if self.api_root:
            return self.api_root
        scheme = "https" if self.tls else "http"
        host = "127.0.0.1" if self.listen.host in ("0.0.0.0", "::") else self.listen.host  # noqa: S104
        return f"{scheme}://{HostPort(host=host, port=self.listen.port)}"

    @property
    def token_issuer(self) -> str:
        return self.issuer or self.public_root

    @property
    def sas_issuer(self) -> str:
        """``iss`` of the SAS's assertions to MC services."""
        return self.sas_assertion_issuer or f"{self.token_issuer}/sas"

    @property
    def sas_identity(self) -> str:
        """The ID this access server registers with the registry: ``sas_id``, else the host name and
        the control plane's port (stable across restarts, so that a restart resumes its cursor)."""
        if self.sas_id:
            return self.sas_id
        import re
        import socket

        host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()).strip("-._") or "sas"
        return f"{host[:56]}-{self.listen.port}"

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Build settings; raise :class:`SettingsError` naming every bad setting."""
        toml: dict[str, Any] = {}
        if config_file is not None:
            try:
                toml = tomllib.loads(config_file.read_text(encoding="utf-8"))
            except OSError as exc:
                raise SettingsError(f"cannot read config file {config_file}: {exc.strerror}") from None
            except tomllib.TOMLDecodeError as exc:
                raise SettingsError(f"config file {config_file} is not valid TOML: {exc}") from None
            toml = toml.get("asgate", toml)
        token = _toml_values.set(toml)
        try:
            settings = cls(**{k: v for k, v in overrides.items() if v is not None})
            settings._config_file = config_file
            return settings
        except ValidationError as exc:
            raise SettingsError(_describe(exc, config_file)) from None
        except PydanticSettingsError as exc:  # a value the environment source could not decode
            raise SettingsError(f"bad setting: {exc}") from None
        finally:
            _toml_values.reset(token)

    @classmethod
    def isolated(cls, **values: Any) -> Settings:
        """Settings from ``values`` and the defaults alone, ignoring every ``ASGATE_*`` variable
        (``asgate demo`` runs an asgate of its own, which must not take the operator's database,
        addresses or keys)."""
        try:
            return cls(_env_prefix="\0", **values)  # no variable's name starts with NUL
        except ValidationError as exc:
            raise SettingsError(_describe(exc, None)) from None


KEK_BYTES = 32  # AES-256


def decode_kek(text: str) -> bytes:
    """A key-encryption key from its base64 text (standard or URL-safe alphabet, padding optional)."""
    cleaned = text.strip()
    try:
        key = base64.b64decode(
            cleaned.replace("-", "+").replace("_", "/") + "=" * (-len(cleaned) % 4), validate=True
        )
    except ValueError:
        raise ValueError("must be base64 (e.g. `openssl rand -base64 32`)") from None
    if len(key) != KEK_BYTES:
        raise ValueError(f"must be base64 of {KEK_BYTES} bytes (AES-256), not {len(key)}")
    return key


def _describe(exc: ValidationError, config_file: Path | None) -> str:
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "settings"
        where = f"{ENV_PREFIX}{field.upper()}"
        if config_file is not None:
            where += f" (or '{field}' in {config_file})"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            where = f"'{field}'" + (f" in {config_file}" if config_file else "")
            message = "unknown setting"
        lines.append(f"bad setting {where}: {message}")
    return "\n".join(lines)
