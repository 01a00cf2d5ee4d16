"""The roles a process can run; ``asgate up`` runs them all, ``asgate serve ROLE`` some."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Protocol

from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from asgate.kernel.web import build_app
from asgate.kernel.web_cors import AllowedOrigins, CorsMiddleware
from asgate.system.runtime import Runtime


class Role(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def apis(self) -> Sequence[str]: ...

    def routes(self) -> list[BaseRoute]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def _factories() -> dict[str, Callable[[Runtime], Role]]:
    from asgate.access.role import AccessRole
    from asgate.idm.role import IdmRole
    from asgate.msgin5g.role import MsgsRole
    from asgate.registry.role import RegistryRole

    return {"idm": IdmRole, "msgin5g": MsgsRole, "registry": RegistryRole, "access": AccessRole}


def names() -> list[str]:
    return list(_factories())


@asynccontextmanager
async def control_app(rt: Runtime, role_names: Sequence[str] | None = None) -> AsyncIterator[ASGIApp]:
    """The control-plane ASGI app with the given roles started (all by default)."""
    from asgate.system.apidocs import DocsRole
    from asgate.system.ops import OpsRole

    factories = _factories()
    unknown = [n for n in role_names or () if n not in factories]
    if unknown:
        raise ValueError(f"unknown role(s): {', '.join(unknown)}; known: {', '.join(factories)}")
    rt.role_names = tuple(role_names or factories)
    roles: list[Role] = [OpsRole(rt)] + [factories[n](rt) for n in rt.role_names]
    roles.append(DocsRole(rt, [api for role in roles for api in role.apis]))  # /docs: these roles' APIs
    async with AsyncExitStack() as stack:
        for role in roles:
            await role.start()
            stack.push_async_callback(role.stop)
        routes = [route for role in roles for route in role.routes()]
        apis = [api for role in roles for api in role.apis]

        async def allowed_origins() -> set[str]:
            return {origin for app in await rt.store.registry.apps() for origin in app.allowed_origins}

        yield CorsMiddleware(build_app(routes, rt.metrics, apis), AllowedOrigins(allowed_origins))
