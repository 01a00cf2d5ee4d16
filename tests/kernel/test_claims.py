"""The one definition of the MC ID claims (TS 33.180 B.2.1) and who follows it."""

from __future__ import annotations

from asgate.domain.idm import User
from asgate.idm import oidc
from asgate.kernel.claims import MC_ID_CLAIM, MC_ID_CLAIMS


def test_every_mc_id_claim_is_a_user_attribute_and_a_userinfo_claim() -> None:
    assert MC_ID_CLAIMS == ("mcptt_id", "mcvideo_id", "mcdata_id")
    assert set(MC_ID_CLAIM.values()) == set(MC_ID_CLAIMS)
    assert all(name in User.model_fields for name in MC_ID_CLAIMS)
    assert all(name in oidc.USERINFO_CLAIMS for name in MC_ID_CLAIMS)
