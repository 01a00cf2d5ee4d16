"""Every OpenAPI document asgate ships is a valid OpenAPI 3.0 document (its $refs resolve)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

import asgate

DOCUMENTS = sorted(
    p
    for p in Path(asgate.__file__).parent.rglob("*.yaml")
    if "migrations" not in p.parts and "openapi" in yaml.safe_load(p.read_text())
)


@pytest.mark.parametrize("path", DOCUMENTS, ids=[p.name for p in DOCUMENTS])
def test_document_is_valid(path: Path) -> None:
    spec, base_uri = read_from_filename(str(path))
    validate(spec, base_uri=base_uri)


def test_there_are_documents() -> None:
    assert len(DOCUMENTS) >= 3
