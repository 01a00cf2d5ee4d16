"""Shared HTTP plumbing for the SDK: one httpx client, bearer tokens, ProblemError on errors."""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from asgate.kernel.problem import Cause, ProblemDetails, ProblemError


class TokenSource(Protocol):
    async def token(self, http: httpx.AsyncClient) -> str: ...


def raise_for_problem(response: httpx.Response) -> None:
    """Turn an error response into the servers' own :class:`ProblemError`."""
    if response.is_success:
        return
    problem: ProblemDetails | None = None
    if "json" in response.headers.get("content-type", ""):
        try:
            problem = ProblemDetails.model_validate(response.json())
        except ValueError:
            problem = None
    if problem is None or problem.status is None:
        problem = ProblemDetails(
            status=response.status_code,
            cause=Cause.UNSPECIFIED_MSG_FAILURE,
            detail=response.text[:200] or None,
        )
    raise ProblemError.from_problem(problem)


class ApiClient:
    """Base class of the SDK's per-API clients."""

    def __init__(
        self,
        base_url: str,
        tokens: TokenSource | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._tokens = tokens
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(transport=transport, timeout=timeout)

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if self._tokens is not None:
            headers["Authorization"] = f"Bearer {await self._tokens.token(self.http)}"
        response = await self.http.request(method, f"{self.base_url}{path}", headers=headers, **kwargs)
        raise_for_problem(response)
        return response

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
