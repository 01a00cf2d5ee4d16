"""API documentation on every server: ``/docs`` lists the APIs this process serves, ``/docs/{api}``
renders one with Swagger UI, ``/openapi/{api}.yaml`` is the OpenAPI document itself (its
relative references renamed to the served names, ``{apiRoot}`` defaulting to this server and the
OAuth2 ``tokenUrl`` absolute: this server's token endpoint, or the issuer's when the IdM runs
elsewhere).

Swagger UI comes from the ``swagger-ui-bundle`` package and is served from here, so the pages work
offline and ask no CDN; its validator badge (a call to validator.swagger.io) is switched off. The
pages are open, like the JWKS and the discovery documents: they describe the APIs, and every API
still needs its token.

The official TS 29.538 document of ``msgs-asregistration`` is not shipped (© 3GPP; it is the
contract the tests validate against, not part of this repository): with ``docs_3gpp_dir`` (a copy of
the 3GPP Forge's files) ``/docs`` serves it and the 3GPP documents it references, else links to it.
"""

from __future__ import annotations

import html
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import anyio.to_thread
import yaml
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Route

import asgate
from asgate.kernel.problem import Cause, ProblemError
from asgate.system.runtime import Runtime

_PACKAGE = Path(asgate.__file__).parent
_REF = re.compile(r"""(\$ref:\s*['"]?)([A-Za-z0-9_./-]+\.yaml)(#)""")
_SAFE_ROOT = re.compile(r"^https?://[A-Za-z0-9.:\[\]_-]+(/[A-Za-z0-9._~/-]*)?$")
_API_ROOT = re.compile(r"""(apiRoot:\s*\{?\s*default:\s*)(['"]?)[^'"\s},]+\2""")
# Swagger UI takes tokenUrl as a URL of its own (no server variables), relative to the document:
# '{apiRoot}/oauth2/token' would post to /openapi/%7BapiRoot%7D/oauth2/token.
# The official 3GPP documents say '{tokenUrl}'.
_TOKEN_URL = re.compile(r"""(tokenUrl:\s*)(['"]?)(?:\{apiRoot\}/oauth2/token|\{tokenUrl\})\2""")
OFFICIAL_API = "msgs-asregistration"
OFFICIAL_FILE = "TS29538_MSGS_ASRegistration.yaml"
_3GPP_NAME = re.compile(r"TS29[0-9]{3}_[A-Za-z0-9_]+")  # what TS 29.538 refers to: TS29571_CommonData
# TS 29.538's own externalDocs; the YAML files are on the 3GPP Forge (5G_APIs).
TS29538 = "https://www.3gpp.org/ftp/Specs/archive/29_series/29.538/"
TS29538_FORGE = "https://forge.3gpp.org/rep/all/5G_APIs"
_HTML_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Scripts only from this server (no inline script); Swagger UI sets inline styles.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}
_ASSET_HEADERS = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
_SWAGGER_FILES = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}
_INIT_JS = """\
// Renders the document named by #swagger-ui's data-url (no inline script: the page's CSP forbids it).
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.url,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
"""


@dataclass(frozen=True)
class ApiDocument:
    """One shipped OpenAPI document, served as ``/openapi/{api}.yaml``."""

    api: str  # the API's first path segment, as the roles name their APIs
    path: str  # inside the asgate package
    listed: bool = True  # False: only referenced by other documents

    @cached_property
    def text(self) -> str:
        """The document with its relative ``$ref``s pointing at the served names of their targets."""
        raw = (_PACKAGE / self.path).read_text(encoding="utf-8")
        here = posixpath.dirname(self.path)

        def served(match: re.Match[str]) -> str:
            target = posixpath.normpath(posixpath.join(here, match.group(2)))
            document = _BY_PATH.get(target)
            name = f"{document.api}.yaml" if document else match.group(2)
            return f"{match.group(1)}{name}{match.group(3)}"

        return _REF.sub(served, raw)

    @cached_property
    def info(self) -> dict[str, str]:
        document = yaml.safe_load(self.text)
        info, servers = document.get("info", {}), document.get("servers") or [{}]
        summary = str(info.get("description", "")).strip().split("\n\n", 1)[0]
        return {
            "title": str(info.get("title", self.api)),
            "summary": " ".join(summary.split()),
            "base": str(servers[0].get("url", f"/{self.api}")).replace("{apiRoot}", ""),
        }


DOCUMENTS = (
    ApiDocument("msgs-admin", "msgin5g/admin-openapi.yaml"),
    ApiDocument("mcx-service-registration", "registry/openapi/service-registration.yaml"),
    ApiDocument("mcx-registry", "registry/openapi/registry.yaml"),
    ApiDocument("mcx-registry-admin", "registry/openapi/admin.yaml"),
    ApiDocument("mcx-registry-sync", "registry/openapi/sync.yaml"),
    ApiDocument("mcx-access-profiles", "access/openapi/access-profiles.yaml"),
    ApiDocument("mcx-registry-common", "registry/openapi/common.yaml", listed=False),
)
_BY_API = {d.api: d for d in DOCUMENTS}
_BY_PATH = {d.path: d for d in DOCUMENTS}


class DocsRole:
    """``/docs``, ``/docs/{api}``, ``/docs/assets/{file}`` and ``/openapi/{api}.yaml`` for the APIs
    ``apis`` (those of the roles this process runs). Every shipped document can be fetched, so that
    the references between them resolve whichever roles run."""

    name = "docs"
    apis = ("docs", "openapi")

    def __init__(self, rt: Runtime, apis: Sequence[str]) -> None:
        self.rt = rt
        self.running = frozenset(apis)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/docs", self.index, methods=["GET"]),
            Route("/docs/assets/{file}", self.asset, methods=["GET"]),
            Route("/docs/{api}", self.page, methods=["GET"]),
            Route("/openapi/{api}.yaml", self.document, methods=["GET"]),
        ]

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def _listed(self) -> list[ApiDocument]:
        return [d for d in DOCUMENTS if d.listed and d.api in self.running]

    async def index(self, request: Request) -> Response:
        listed = self._listed()
        await anyio.to_thread.run_sync(lambda: [d.info for d in listed])  # the first time: read and parse
        rows = [
            f"<li><a href='docs/{d.api}'>{html.escape(d.info['title'])}</a> "
            f"<code>{html.escape(d.info['base'])}</code> · <a href='openapi/{d.api}.yaml'>{d.api}.yaml</a>"
            f"<p>{html.escape(d.info['summary'])}</p></li>"
            for d in listed
        ]
        if OFFICIAL_API in self.running:
            rows.insert(0, _MSGS_SERVED if self._official(OFFICIAL_API) else _MSGS_ROW)
        if "oauth2" in self.running:
            rows.append(_IDM_ROW)
        body = f"<h1>asgate APIs</h1><ul>{''.join(rows)}</ul>{_FOOT}"
        return HTMLResponse(_page("asgate APIs", body, assets="docs/assets/"), headers=_HTML_HEADERS)

    async def page(self, request: Request) -> Response:
        api = request.path_params["api"]
        if api == OFFICIAL_API and api in self.running and self._official(api) is not None:
            title = "MSGS_ASRegistration (TS 29.538, official)"
        else:
            document = self._document(api, listed=True)
            await anyio.to_thread.run_sync(lambda: document.info)
            title = html.escape(document.info["title"])
        body = (
            f"<p class=nav><a href='../docs'>All APIs</a> · <a href='../openapi/{api}.yaml'>"
            f"{api}.yaml</a></p><div id='swagger-ui' data-url='../openapi/{api}.yaml'>"
            f"</div><script src='assets/swagger-ui-bundle.js'></script>"
            f"<script src='assets/asgate-docs.js'></script>"
        )
        head = "<link rel=stylesheet href='assets/swagger-ui.css'>"
        return HTMLResponse(_page(title, body, head, assets="assets/"), headers=self._page_headers())

    def _page_headers(self) -> dict[str, str]:
        """The page's CSP lets "Authorize" reach the issuer's token endpoint when it is elsewhere."""
        issuer = self.rt.settings.token_issuer
        if "oauth2" in self.running or not _SAFE_ROOT.match(issuer):
            return _HTML_HEADERS
        origin = "/".join(issuer.split("/", 3)[:3])
        csp = _HTML_HEADERS["Content-Security-Policy"].replace(
            "connect-src 'self'", f"connect-src 'self' {origin}"
        )
        return {**_HTML_HEADERS, "Content-Security-Policy": csp}

    async def document(self, request: Request) -> Response:
        api = request.path_params["api"]
        official = self._official(api)
        if official is not None:
            text = await anyio.to_thread.run_sync(lambda: official.read_text(encoding="utf-8"))
        else:
            document = self._document(api, listed=False)
            text = await anyio.to_thread.run_sync(lambda: document.text)
        # {apiRoot} defaults to this server, so Swagger UI's "Try it out" calls it at any address.
        root = self.rt.api_root(request.scope)
        if _SAFE_ROOT.match(root):
            text = _API_ROOT.sub(lambda m: f"{m.group(1)}'{root}'", text)
        else:
            root = self.rt.settings.public_root
        # ...and "Authorize" gets its token where the IdM is: here if this process runs it.
        token_url = f"{root if 'oauth2' in self.running else self.rt.settings.token_issuer}/oauth2/token"
        text = _TOKEN_URL.sub(lambda m: f"{m.group(1)}'{token_url}'", text)
        return Response(
            text,
            media_type="application/yaml",
            headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"},
        )

    async def asset(self, request: Request) -> Response:
        name = request.path_params["file"]
        if name == "asgate-docs.js":
            return Response(_INIT_JS, media_type="text/javascript", headers=_ASSET_HEADERS)
        if name not in _SWAGGER_FILES:
            raise ProblemError(404, Cause.RESOURCE_URI_STRUCTURE_NOT_FOUND, "no such resource")
        from swagger_ui_bundle import swagger_ui_path  # only when a page is viewed

        return FileResponse(
            Path(str(swagger_ui_path)) / name, media_type=_SWAGGER_FILES[name], headers=_ASSET_HEADERS
        )

    def _official(self, api: str) -> Path | None:
        """The official 3GPP file served as ``/openapi/{api}.yaml``, if ``docs_3gpp_dir`` has it:
        ``msgs-asregistration`` and, by their own names, the TS 29.5xx documents it refers to."""
        folder = self.rt.settings.docs_3gpp_dir
        if folder is None or api in _BY_API:
            return None
        name = OFFICIAL_FILE if api == OFFICIAL_API else f"{api}.yaml" if _3GPP_NAME.fullmatch(api) else None
        path = folder / name if name else None
        return path if path is not None and path.is_file() else None

    def _document(self, api: str, *, listed: bool) -> ApiDocument:
        document = _BY_API.get(api)
        if document is None or (listed and (not document.listed or api not in self.running)):
            detail = f"no API document {api!r} here; GET /docs lists them"
            if api == OFFICIAL_API:
                detail = (
                    f"the official TS 29.538 document is not shipped; see {TS29538_FORGE} "
                    "(set docs_3gpp_dir to a copy of its files to serve it here)"
                )
            raise ProblemError(404, Cause.RESOURCE_URI_STRUCTURE_NOT_FOUND, detail)
        return document


_MSGS_ROW = (
    "<li><b>MSGin5G AS registration</b> <code>/msgs-asregistration/v1</code> · official "
    f"<a href='{TS29538_FORGE}'>TS29538_MSGS_ASRegistration.yaml</a> (3GPP Forge, "
    f"<a href='{TS29538}'>TS 29.538</a> 6.1)<p>Application Server registration and de-registration "
    "(TS 23.554 8.2.5, 8.2.6), implemented as the 3GPP document says; © 3GPP, so not served "
    "here (set <code>docs_3gpp_dir</code> to a copy of the 3GPP Forge's files to serve it).</p></li>"
)
_MSGS_SERVED = (
    "<li><a href='docs/msgs-asregistration'>MSGin5G AS registration</a> "
    "<code>/msgs-asregistration/v1</code> · <a href='openapi/msgs-asregistration.yaml'>"
    f"msgs-asregistration.yaml</a> (the official TS29538_MSGS_ASRegistration.yaml, <a href='{TS29538}'>"
    "TS 29.538</a> 6.1, from <code>docs_3gpp_dir</code>)<p>Application Server registration and "
    "de-registration (TS 23.554 8.2.5, 8.2.6), implemented as the 3GPP document says.</p></li>"
)
_IDM_ROW = (
    "<li><b>IdM: OAuth 2.0 and OpenID Connect</b> <code>/oauth2</code> · "
    "<a href='.well-known/openid-configuration'>openid-configuration</a> · "
    "<a href='oauth2/jwks'>JWKS</a><p>Client credentials for applications and services, "
    "authorization code with PKCE for MC users (TS 33.180 Annex B); described by its discovery "
    "document (RFC 8414).</p></li>"
)
_FOOT = "<p class=foot>Every API needs a bearer token with its scope; these pages do not.</p>"


def _page(title: str, body: str, head: str = "", *, assets: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>{title}</title><link rel=icon href='{assets}favicon-32x32.png'>{head}"
        "<style>body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:60rem;"
        "padding:0 1rem;color:#222}li{margin:.8rem 0}li p{margin:.2rem 0;color:#555}"
        "code{background:#f3f3f3;padding:0 .3rem}.nav{margin:0 0 1rem}.foot{color:#777}</style>"
        f"</head><body>{body}</body></html>"
    )
