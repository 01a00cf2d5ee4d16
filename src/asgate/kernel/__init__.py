"""The shared kernel: small definitions that every package uses, the client SDK included.

Nothing here imports a role package (idm, registry, access, msgin5g), the store or a framework, so
``asgate.client`` may import it as freely as the server does.
"""
