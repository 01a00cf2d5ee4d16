"""Authentication shared by every API: bearer tokens (and optionally TLS client certificates)."""

from asgate.auth.guard import Authenticator
from asgate.auth.tokens import Principal, TokenError, TokenValidator

__all__ = ["Authenticator", "Principal", "TokenError", "TokenValidator"]
