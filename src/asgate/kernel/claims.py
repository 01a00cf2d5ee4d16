"""The MC ID claims (TS 33.180 B.2.1): the MC service IDs an MC user's tokens carry.

One definition for the IdM that issues them, the access server that reads them from an access
token and forwards them in its assertion, and the SDK that reads them from an ID token or an
assertion. A user attribute of the same name holds each (``User.mcptt_id`` ...).
"""

from __future__ import annotations

MCPTT_ID = "mcptt_id"
MCVIDEO_ID = "mcvideo_id"
MCDATA_ID = "mcdata_id"
# In this order wherever the claims are listed (userinfo, bulk import columns, assertions).
MC_ID_CLAIMS = (MCPTT_ID, MCVIDEO_ID, MCDATA_ID)
# The claim naming the user in each MC service (by its lower-case service type).
MC_ID_CLAIM = {"mcptt": MCPTT_ID, "mcvideo": MCVIDEO_ID, "mcdata": MCDATA_ID}
