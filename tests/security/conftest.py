"""The security suite: one module per trust boundary (docs/security.md), one test per attack class.

Every test asserts the refusal a user (or an operator reading the audit log) would see *and* that
nothing crossed the boundary: no request reached an instance, nothing changed in the store.
"""
