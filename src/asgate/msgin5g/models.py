"""TS 29.538 ``msgs-asregistration`` data types (clause 6.1.6) that the store never holds: the
request, its acknowledgement, a page of the administrator's list. The AS profile and the stored
registration are :mod:`asgate.domain.msgin5g`'s.

Wire names are the YAML's, including the normative misspelling ``appSenarios``.
"""

from __future__ import annotations

from asgate.domain.msgin5g import ASProfile, Registration
from asgate.kernel.problem import ProblemDetails
from asgate.kernel.wire import WireModel


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


class RegistrationPage(WireModel):
    """One page of ``GET /msgs-admin/v1/registrations``; ``next`` is the cursor of the next page."""

    items: list[Registration]
    next: str | None = None
