"""The security suite: one module per trust boundary (docs/security.md), one test per attack class.

Every test asserts the refusal a user (or an operator reading the audit log) would see *and* that
nothing crossed the boundary: no request reached an instance, nothing changed in the store.
"""

from __future__ import annotations

# The service clients provisioned for their pools (issue 8 item 1), for the tests that need an
# instance registered before they attack something else.
from tests.registry.conftest import service_clients  # noqa: F401
