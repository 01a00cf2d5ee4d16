"""TS 29.538 ``msgs-asregistration`` data types (clause 6.1.6), plus the stored registration.

Wire names are the YAML's, including the normative misspelling ``appSenarios``.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from asgate.kernel.problem import ProblemDetails
from asgate.kernel.wire import WireModel


class ASProfile(WireModel):
    """TS 29.538 6.1.6.2.4 (TS 23.554 Table 9.1.2.3-1 "AS profile")."""

    app_name: str | None = None
    app_providers: list[str] | None = Field(default=None, min_length=1)
    app_senarios: list[str] | None = Field(default=None, min_length=1)
    app_category: str | None = None
    as_status: str | None = None


class ASRegistration(WireModel):
    """TS 29.538 6.1.6.2.2: the body of ``POST /registrations``.

    No length limits beyond the YAML's: the body limit (``max_body_bytes``) bounds every field, and
    an AS Service ID longer than any provisioned one (256) is refused as not provisioned.
    """

    as_svc_id: str
    app_id: str | None = None
    target_uri: str | None = None
    as_prof: ASProfile | None = None


class ASRegistrationAck(WireModel):
    """TS 29.538 6.1.6.2.3: ``result`` is a mandatory ProblemDetails even on success."""

    as_svc_id: str
    result: ProblemDetails


class Registration(WireModel):
    """A stored AS registration, as the administrator sees it (``msgs-admin/v1``)."""

    registration_id: str
    as_svc_id: str
    client_id: str
    app_id: str | None = None
    target_uri: str | None = None
    as_prof: ASProfile | None = None
    registered_at: datetime


class RegistrationPage(WireModel):
    """One page of ``GET /msgs-admin/v1/registrations``; ``next`` is the cursor of the next page."""

    items: list[Registration]
    next: str | None = None
