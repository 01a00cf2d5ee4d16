"""The MSGin5G AS registration records the store persists and returns (TS 29.538 clause 6.1.6 shapes).

They lie below the store (docs/decisions.md "Records below the store"); the API's requests and
answers stay in :mod:`asgate.msgin5g.models`. Wire names are the YAML's, including the normative
misspelling ``appSenarios``.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from asgate.kernel.wire import WireModel


class ASProfile(WireModel):
    """TS 29.538 6.1.6.2.4 (TS 23.554 Table 9.1.2.3-1 "AS profile")."""

    app_name: str | None = None
    app_providers: list[str] | None = Field(default=None, min_length=1)
    app_senarios: list[str] | None = Field(default=None, min_length=1)
    app_category: str | None = None
    as_status: str | None = None


class Registration(WireModel):
    """A stored AS registration, as the administrator sees it (``msgs-admin/v1``)."""

    registration_id: str
    as_svc_id: str
    client_id: str
    app_id: str | None = None
    target_uri: str | None = None
    as_prof: ASProfile | None = None
    registered_at: datetime
