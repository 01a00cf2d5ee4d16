"""What every schemathesis run of asgate's APIs tolerates, and why: one place for the three runs
(tests/security/test_fuzz_all_apis.py, tests/registry/test_schemathesis.py and
tests/msgin5g/test_schemathesis.py)."""

from __future__ import annotations

CONFIG = """
# Valid data may still meet a state the generator cannot know: a random If-Match is 412
# (RFC 9110 13.1.1), an id that names nothing is 404, a resource already there is 409.
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "412", "429"]

# A WebSocket: a plain GET, which is all an HTTP fuzzer sends, is 426 Upgrade Required (RFC 9110
# 15.5.22), documented as the operation's default response.
[[operations]]
include-path = "/notifications"
checks.positive_data_acceptance.expected-statuses = ["426"]

# An instance address or a URI the address policies refuse (loopback, metadata, non-canonical numeric
# hosts) is schema-valid, as no format can say "not loopback": 400 naming the field.
[[operations]]
include-path-regex = "^/(services|authorizations|apps/)"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "412", "429"]

# TS 29.538's targetUri is a TS 29.571 Uri (a plain string): one the outbound URI policy refuses
# (no scheme, loopback, metadata) is schema-valid all the same, and 400 naming /targetUri.
[[operations]]
include-name = "POST /registrations"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

# A CSC-15 change's payload is checked against its kind and key, which OpenAPI 3.0 cannot tie
# together; and a batch that does not continue the access server's sequence is 409 with any body.
[[operations]]
include-path = "/changes"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "409"]
"""
# mcx-access-profiles only (other APIs have paths of these names): the payload must name the key.
ACCESS_CONFIG = """
[[operations]]
include-path-regex = "^/(app-profiles|user-authorizations|service-pools)/"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "409"]
"""
