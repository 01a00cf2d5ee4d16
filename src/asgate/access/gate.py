"""The service access server's gate (seed 10.X.5 step 2): for every request, authenticate the MC
user behind the external application (R-5.18.2-004), check the application profile and the user's
authorization (R-5.18.2-002), apply the communication priority (R-5.18.2-003) and the flood limits,
and tell the engine where to forward (steps 3-5).

Decisions come from memory (cached token checks, the CSC-15 state), so most requests are decided
synchronously in ``admit_nowait``; a token not seen before, a shared (Redis) rate limit or a full
admission queue take the asynchronous ``admit``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import parse_qsl

from asgate.access import priority as prio
from asgate.access.admission import Admission
from asgate.access.assertion import AssertionMinter, forwards_user_token
from asgate.access.metrics import SasMetrics
from asgate.access.policy import Allowed, Caller, ProfileRule, Refused, decide
from asgate.access.ratelimit import InflightCaps, Limit, RedisBuckets, TokenBuckets, Verdict
from asgate.access.state import AccessState
from asgate.access.types import Admit, Header, Reject, RequestHead
from asgate.auth.tokens import Principal, TokenError, TokenValidator
from asgate.client.assertion import HEADER as ASSERTION_HEADER
from asgate.kernel import cors, logs
from asgate.kernel.bearer import bearer_token_bytes
from asgate.kernel.problem import problem_body

if TYPE_CHECKING:
    from asgate.idm.keys import KeyRing
    from asgate.kernel.settings import Settings

_log = logs.get("asgate.access.gate")
AUTHORIZATION = b"authorization"
MC_USER = b"asgate-mc-service-id"
APPLICATION = b"asgate-application"
ASSERTION = ASSERTION_HEADER.encode()
# What the gate tells the MC service (seed 10.X.5 step 3); a client's own copies are never
# forwarded (headers.request_head also drops them spelt with "_" for "-"). The signed assertion is
# what a service may trust; the plain identity headers only behind the SAS, as a convenience.
ASSERTED = frozenset({MC_USER, APPLICATION, ASSERTION, prio.HEADER})
# The MC user's own token stays with the SAS unless the pool is in sas_forward_user_token.
_DROP = ASSERTED | {AUTHORIZATION}


def _challenge(error: str | None = None, description: str = "") -> list[Header]:
    text = 'Bearer realm="asgate"'
    if error:
        text += f', error="{error}", error_description="{description.replace(chr(34), chr(39))[:200]}"'
    return [(b"www-authenticate", text.encode("latin-1", "replace"))]


class Misses(Protocol):
    """Issue 14: before refusing for want of CSC-15 state, ask the registry once
    (``asgate.access.csc15.ProfileFetcher``)."""

    def wanted(self, app_id: str, cause: str) -> bool: ...

    async def fetch(self, app_id: str) -> None: ...


@dataclass
class _Pending:
    """A request that passed the policy and waits for admission and limits."""

    allowed: Allowed
    head: RequestHead
    started: float
    mc_ids: dict[str, str]


class SasGate:
    def __init__(
        self,
        state: AccessState,
        validator: TokenValidator,
        *,
        admission: Admission,
        metrics: SasMetrics | None = None,
        redis: RedisBuckets | None = None,
        max_body: int = 16 << 20,
        max_ws_message: int = 1 << 20,
        audit: Callable[[dict[str, Any]], None] | None = None,
        refusal_hold: float = 0.0,
        minter: AssertionMinter | None = None,
        forward_user_token: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.validator = validator
        self.admission = admission
        self.metrics = metrics
        self.redis = redis
        self.buckets = TokenBuckets()
        self.inflight = InflightCaps()
        self.max_body = max_body
        self.max_ws_message = max_ws_message
        self._audit = audit
        self.refusal_hold = refusal_hold
        self.minter = minter
        self.forward_user_token = forward_user_token
        self._forwards: dict[tuple[str, str], bool] = {}
        self._clock = clock
        self._observers: dict[tuple[str, str, str], Callable[[int, float], None]] = {}
        self.misses: Misses | None = None

    @classmethod
    def configured(
        cls,
        s: Settings,
        state: AccessState,
        validator: TokenValidator,
        *,
        keyring: KeyRing,
        metrics: SasMetrics,
        audit: Callable[[dict[str, Any]], None],
    ) -> SasGate:
        """The gate as the settings describe it (the SAS role and every data-plane worker)."""
        redis = RedisBuckets(s.sas_redis_url, fail_open=s.sas_redis_fail_open) if s.sas_redis_url else None
        return cls(
            state,
            validator,
            admission=Admission(s.sas_max_inflight, s.sas_queue_size, s.sas_queue_timeout),
            metrics=metrics,
            redis=redis,
            max_body=s.sas_max_body_bytes,
            max_ws_message=s.sas_max_ws_message_bytes,
            audit=audit,
            refusal_hold=s.sas_refusal_hold,
            minter=AssertionMinter(keyring, issuer=s.sas_issuer, ttl=s.sas_assertion_ttl),
            forward_user_token=tuple(s.sas_forward_user_token),
        )

    # ------------------------------------------------------------ the two entry points

    def admit_nowait(self, head: RequestHead) -> Admit | Reject | None:
        origin = head.header(cors.ORIGIN)
        if origin is None:  # not a browser's cross-origin request: nothing more to do
            return self._admit_nowait(head)
        allowed = self._origin_allowed(head, origin)
        early = self._cross_origin(head, origin, allowed)
        if early is not None:
            return early
        decision = self._admit_nowait(head)
        return decision if decision is None else _with_cors(decision, origin if allowed else None)

    async def admit(self, head: RequestHead) -> Admit | Reject:
        origin = head.header(cors.ORIGIN)
        if origin is None:
            return await self._admit(head)
        allowed = self._origin_allowed(head, origin)
        early = self._cross_origin(head, origin, allowed)
        if early is not None:
            return early
        decision = await self._admit(head)
        return _with_cors(decision, origin if allowed else None)

    # ------------------------------------------------------------ browsers (CORS)

    def _origin_allowed(self, head: RequestHead, origin: bytes) -> bool:
        """Whether ``origin`` is one of the allowed origins of the application whose profile the
        path's index names. A preflight carries no token, so the index alone says which application
        (an index belongs to exactly one); the answer for an unknown index and for a disallowed
        origin is the same, so a foreign page learns nothing about which indexes exist."""
        rule = self._rule(head.path)
        return rule is not None and origin in rule.origins

    def _cross_origin(self, head: RequestHead, origin: bytes, allowed: bool) -> Reject | None:
        """The gate's own answer to a preflight, or the refusal of a WebSocket from a foreign page
        (cross-site WebSocket hijacking: a browser sends no preflight for a WebSocket); None: the
        request goes through the gate as any other."""
        if head.method == "OPTIONS" and (method := head.header(cors.REQUEST_METHOD)) is not None:
            if not allowed:
                return self._refuse(
                    head, None, 403, "ORIGIN_NOT_ALLOWED", "this origin may not use this path"
                )
            granted = cors.preflight_method(method)
            if granted is None:
                detail = "that method cannot be allowed for a cross-origin request"
                return self._refuse(head, None, 403, "OPERATION_NOT_AUTHORIZED", detail)
            # Fetch "CORS-preflight fetch": an ok status and these headers; nothing reaches an instance.
            return Reject(204, {}, cors.preflight_headers(origin, granted, head.header(cors.REQUEST_HEADERS)))
        if head.upgrade and not allowed:
            return self._refuse(
                head, None, 403, "ORIGIN_NOT_ALLOWED", "a WebSocket from this origin is refused"
            )
        return None

    def _rule(self, path: str) -> ProfileRule | None:
        index_text = path[1:].partition("/")[0]
        if index_text.isascii() and index_text.isdigit():
            return self.state.profiles.get(int(index_text))
        return None

    # ------------------------------------------------------------ authentication and admission

    def _admit_nowait(self, head: RequestHead) -> Admit | Reject | None:
        token = _bearer(head)
        if token is None:
            return self._refuse(
                head, None, 401, "INVALID_TOKEN", "a bearer access token is required", _challenge()
            )
        principal = self.validator.cached(token)
        if principal is None:
            return None  # a token not seen before: verify it (maybe fetching a JWKS) in admit()
        checked = self._check(head, principal, may_miss=True)
        if checked is None:
            return None  # a CSC-15 miss: admit() asks the registry first
        if not isinstance(checked, _Pending):
            return checked
        if self.redis is not None and self._limits(checked.allowed):
            return None  # shared limits need a Redis round trip
        entered = self.admission.try_enter(checked.allowed.priority)
        if entered is None:
            return None  # it would have to queue: admit() waits
        return self._admitted(checked, entered, self._local_limits(checked))

    async def _admit(self, head: RequestHead) -> Admit | Reject:
        token = _bearer(head)
        if token is None:
            return self._refuse(
                head, None, 401, "INVALID_TOKEN", "a bearer access token is required", _challenge()
            )
        try:
            principal = await self.validator.validate(token)
        except TokenError as exc:
            detail = f"access token rejected: {exc}"
            return self._refuse(
                head, None, 401, "INVALID_TOKEN", detail, _challenge("invalid_token", str(exc))
            )
        checked = self._check(head, principal, may_miss=True)
        if checked is None:  # a CSC-15 miss: fetch once, then decide without deferring again
            await cast(Misses, self.misses).fetch(principal.client_id)
            checked = cast(_Pending | Reject, self._check(head, principal))
        if not isinstance(checked, _Pending):
            return checked
        entered = await self.admission.enter(checked.allowed.priority)
        limits = self._limits(checked.allowed)
        if self.redis is not None and entered and limits:  # no limits: nothing to count, or to refuse
            verdict = await self.redis.take(limits)
        else:
            verdict = self._local_limits(checked)
        return self._admitted(checked, entered, verdict)

    # ------------------------------------------------------------ steps

    def _check(
        self, head: RequestHead, principal: Principal, *, may_miss: bool = False
    ) -> _Pending | Reject | None:
        """Authorization (seed 10.X.5 step 2) and the priority asked for: no side effects. ``None``:
        refused for want of CSC-15 state that the registry may have (``may_miss``, see Misses)."""
        rest = head.path[1:].partition("/")[2]
        rule = self._rule(head.path)
        try:
            requested = prio.from_headers(head.headers)
        except prio.PriorityError as exc:
            return self._refuse(head, principal, 400, "INVALID_PRIORITY", f"Resource-Priority: {exc}")
        caller = Caller.of(principal.client_id, principal.claims)
        decision = decide(caller, rule, self.state.grants, head.method, "/" + rest, requested)
        if isinstance(decision, Refused):
            if may_miss and self.misses is not None and self.misses.wanted(caller.app_id, decision.cause):
                return None
            return self._refuse(head, principal, decision.status, decision.cause, decision.detail)
        return _Pending(decision, head, self._clock(), dict(caller.mc_service_ids))

    def _limits(self, allowed: Allowed) -> list[Limit]:
        rule = allowed.rule
        limits: list[Limit] = []
        if rule.app_rate is not None:
            limits.append((f"app:{rule.app_id}", rule.app_rate))
        if rule.user_rate is not None:
            limits.append((f"user:{rule.app_id}:{allowed.user}", rule.user_rate))
        return limits

    def _local_limits(self, pending: _Pending) -> Verdict:
        limits = self._limits(pending.allowed)
        return self.buckets.take(limits, self._clock()) if limits else Verdict(True)

    def _admitted(self, pending: _Pending, entered: bool, verdict: Verdict) -> Admit | Reject:
        head, allowed = pending.head, pending.allowed
        if not entered:
            retry = [(b"retry-after", str(self.admission.retry_after).encode())]
            return self._held(
                self._refuse(
                    head, None, 503, "NF_CONGESTION", "overloaded: lower priorities are shed first", retry
                )
            )
        if not verdict.allowed:
            self.admission.leave()
            retry = [(b"retry-after", verdict.retry_after_header)]
            return self._held(
                self._refuse(
                    head,
                    None,
                    429,
                    "RATE_LIMITED",
                    "the shared rate limits cannot be checked (Redis unreachable, sas_redis_fail_open off)"
                    if verdict.degraded
                    else "the application's or user's rate limit is reached",
                    retry,
                )
            )
        rule = allowed.rule
        inflight_key = rule.app_id
        if rule.max_inflight is not None and not self.inflight.try_acquire(inflight_key, rule.max_inflight):
            self.admission.leave()
            return self._held(
                self._refuse(
                    head, None, 429, "TOO_MANY_INFLIGHT", "the application has too many requests under way"
                )
            )
        pool = self.state.pools.get(rule.pool)
        if pool is None:
            self._release(rule.max_inflight, inflight_key)
            return self._refuse(head, None, 503, "NF_CONGESTION", "the service has no instance available")
        applied = str(allowed.priority) if allowed.priority else ""
        asserted = [(MC_USER, allowed.user.encode()), (APPLICATION, rule.app_id.encode())]
        if self.minter is not None:
            try:
                token = self.minter.mint(rule.app_id, allowed.user, rule.pool, applied, pending.mc_ids)
            except (RuntimeError, OSError, ValueError):  # no signing key left (keys directory emptied)
                _log.exception("cannot sign the SAS assertion")
                self._release(rule.max_inflight, inflight_key)
                return self._refuse(head, None, 500, "SYSTEM_FAILURE", "internal error")
            asserted.append((ASSERTION, token))
        prefix = pool.api_prefix
        rest = head.path[head.path.index("/", 1) :] if "/" in head.path[1:] else "/"
        query = _without_token(head.query) if head.upgrade else head.query
        observe = self._observer(rule.app_id, rule.label, applied)
        started = pending.started

        def done(status: int) -> None:
            self._release(rule.max_inflight, inflight_key)
            observe(status, started)

        response_headers = [(prio.HEADER, allowed.priority.header_value())] if allowed.priority else []
        asserted += response_headers  # the applied priority, not the client's own field lines
        return Admit(
            pool=pool.upstream,
            path=prefix + rest + (f"?{query}" if query else ""),
            set_request_headers=asserted,
            drop_request_headers=ASSERTED if self._forwards_token(rule.pool) else _DROP,
            set_response_headers=response_headers,
            location_rewrite=(prefix, f"/{rule.index}") if prefix else None,
            max_body=self.max_body,
            max_ws_message=self.max_ws_message,
            on_done=done,
        )

    def _forwards_token(self, pool: tuple[str, str]) -> bool:
        known = self._forwards.get(pool)
        if known is None:
            known = self._forwards[pool] = forwards_user_token(self.forward_user_token, pool)
        return known

    def _held(self, reject: Reject) -> Reject:
        """Refusals that say "come back later" also hold the connection (flood absorption)."""
        reject.hold = self.refusal_hold
        return reject

    def _release(self, max_inflight: int | None, key: str) -> None:
        self.admission.leave()
        if max_inflight is not None:
            self.inflight.release(key)

    def _observer(self, app: str, service: str, applied: str) -> Callable[[int, float], None]:
        key = (app, service, applied)
        observer = self._observers.get(key)
        if observer is None:
            if self.metrics is None:
                observer = _ignore
            else:
                observer = self.metrics.observer(app, service, applied)
            self._observers[key] = observer
        return observer

    def _refuse(
        self,
        head: RequestHead,
        principal: Principal | None,
        status: int,
        cause: str,
        detail: str,
        headers: list[Header] | None = None,
    ) -> Reject:
        if self.metrics is not None:
            self.metrics.refused(f"{status} {cause}")
        if self._audit is not None and status in (401, 403):
            actor = principal.client_id if principal else f"{head.client[0]}"
            self._audit(
                {"actor": actor, "action": "sas.deny", "resource": head.path[:400], "outcome": "denied",
                 "reason": f"{cause}: {detail}", "details": {"method": head.method}}
            )  # fmt: skip
        return Reject(status, problem_body(status, cause, detail), headers or [])


def _ignore(status: int, started: float) -> None:
    pass


def _with_cors(decision: Admit | Reject, origin: bytes | None) -> Admit | Reject:
    """An answer to a browser's cross-origin request. For an allowed ``origin`` every answer carries
    the CORS fields, refusals included (a browser application can read why it was refused, and when
    to come back); for any other, ``Vary: Origin`` alone, so no cache hands one origin's answer to
    another (RFC 9111 4.1)."""
    headers = cors.actual_headers(origin) if origin is not None else [cors.VARY]
    if isinstance(decision, Reject):
        decision.headers = [*decision.headers, *headers]
    else:
        decision.set_response_headers = [*decision.set_response_headers, *headers]
        decision.refusal_headers = headers
    return decision


def _bearer(head: RequestHead) -> str | None:
    value = head.header(AUTHORIZATION)
    if value is None:
        # RFC 6750 2.3: a browser's WebSocket cannot send an Authorization header; its token comes
        # as the access_token query parameter (and is removed before the request goes on).
        return _query_token(head.query) if head.upgrade else None
    return bearer_token_bytes(value)


def _query_token(query: str) -> str | None:
    tokens = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "access_token"]
    return tokens[0] if len(tokens) == 1 and tokens[0] else None


def _without_token(query: str) -> str:
    """The query an instance gets: never the user's access token (the rest exactly as sent)."""
    if "access_token" not in query:
        return query
    return "&".join(p for p in query.split("&") if p.partition("=")[0] != "access_token")


class AuditBuffer:
    """Refusals on the data plane are audited without putting a database write on the hot path:
    rows queue here (bounded, so a flood cannot exhaust memory) and a task writes them in batches."""

    def __init__(self, limit: int = 10_000) -> None:
        self.rows: deque[dict[str, Any]] = deque(maxlen=limit)
        self.dropped = 0

    def add(self, row: dict[str, Any]) -> None:
        if len(self.rows) == self.rows.maxlen:
            self.dropped += 1
        self.rows.append(row)

    def take(self) -> list[dict[str, Any]]:
        rows = list(self.rows)
        self.rows.clear()
        return rows
