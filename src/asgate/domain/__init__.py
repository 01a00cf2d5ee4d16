"""The records the store persists and returns, and the role packages serve (issue 10 §1).

They lie below the store: the store imports them, never a role package's models, and nothing here
imports the store, a role package or a framework beyond pydantic (tests/test_layers.py). One module
per role: :mod:`asgate.domain.registry`, :mod:`asgate.domain.idm`, :mod:`asgate.domain.msgin5g`.
Requests and answers that are never stored stay in the role packages' ``models.py``.
"""
