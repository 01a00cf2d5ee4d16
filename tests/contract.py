"""Validate responses against an OpenAPI document with openapi-core (3GPP problem+json included)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import httpx
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse


@cache
def load(path: Path) -> OpenAPI:
    """Load a document; one without the TS 29.571 file beside it (rel-17/) resolves refs one level up."""
    config = Config(extra_media_type_deserializers={"application/problem+json": json.loads})
    text = path.read_text(encoding="utf-8")
    beside = (path.parent / "TS29571_CommonData.yaml").exists() or "TS29571_CommonData.yaml" not in text
    base = path.parent if beside else path.parent.parent
    data = yaml.safe_load(text)
    return OpenAPI.from_dict(data, config=config, base_uri=base.as_uri() + "/")


def check(spec: Path, response: httpx.Response) -> None:
    """Raise if ``response`` (to the request that produced it) does not conform to ``spec``."""
    request = response.request
    url = request.url
    content_type = request.headers.get("content-type", "application/json").split(";")[0]
    mock_request = MockRequest(
        f"{url.scheme}://{url.netloc.decode()}",
        request.method.lower(),
        url.path,
        args=dict(url.params),
        data=(request.content if hasattr(request, "_content") else b"") or None,
        content_type=content_type,
    )
    mock_response = MockResponse(
        response.content,
        status_code=response.status_code,
        headers=dict(response.headers),
        content_type=response.headers.get("content-type", "").split(";")[0],
    )
    load(spec).validate_response(mock_request, mock_response)
