"""asgate: a 3GPP service-layer gateway (MSGin5G AS registration, MC external application access)."""

__version__ = "0.1.0"
