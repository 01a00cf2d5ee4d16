"""Service access server (SAS) data plane: the authorizing, priority-aware reverse proxy engine.

The engine (``http1``, ``upstream``, ``websocket``, ``server``) moves bytes; the decisions it asks
for come from a :class:`~asgate.access.types.Gate`. ``priority``, ``admission`` and ``ratelimit``
are the pure building blocks a gate calls.
"""
