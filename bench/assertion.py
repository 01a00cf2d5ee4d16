"""Micro-benchmark: what the SAS's assertion to MC services costs per request.

    .venv/bin/python bench/assertion.py            # prints µs per call, signed vs cached

The SAS mints one assertion per (application, MC user, pool, priority) and reuses it for a few
seconds (asgate.access.assertion.AssertionMinter); this measures an ES256 signature (a miss) and
a cache hit, and the verification an MC service does (asgate.client.verify_sas_assertion with the
key set cached). Single process, no I/O but the key directory's mtime check once a second.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from asgate.access.assertion import AssertionMinter
from asgate.client import SasKeys, verify_sas_assertion
from asgate.idm.keys import KeyRing

POOL = ("GM", "gm-north")
IDS = {"mcptt_id": "alice@mc.example"}


def per_call(n: int, call: object) -> float:
    started = time.perf_counter()
    for _ in range(n):
        call()  # type: ignore[operator]
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        ring = KeyRing(Path(directory))
        ring.ensure()
        now = [1000.0]
        minter = AssertionMinter(ring, issuer="https://mc.example/sas", clock=lambda: now[0])

        def miss() -> None:
            now[0] += 10.0  # past the reuse window: sign again
            minter.mint("console-1", "alice@mc.example", POOL, "mcpttp.9", IDS)

        def hit() -> None:
            minter.mint("console-1", "alice@mc.example", POOL, "mcpttp.9", IDS)

        signed = per_call(2000, miss)
        cached = per_call(200_000, hit)
        token = AssertionMinter(ring, issuer="https://mc.example/sas").mint(
            "console-1", "alice@mc.example", POOL, "mcpttp.9", IDS
        )
        keys = SasKeys(jwks=ring.jwks())
        headers = {"asgate-assertion": token.decode()}

        async def verify(n: int) -> float:
            started = time.perf_counter()
            for _ in range(n):
                await verify_sas_assertion(
                    headers, keys, issuer="https://mc.example/sas", audience="GM/gm-north"
                )
            return (time.perf_counter() - started) / n * 1e6

        verified = asyncio.run(verify(2000))  # the first call verifies, the rest hit the cache
        keys_without_cache = [SasKeys(jwks=ring.jwks()) for _ in range(500)]

        async def verify_fresh() -> float:
            started = time.perf_counter()
            for fresh in keys_without_cache:
                await verify_sas_assertion(
                    headers, fresh, issuer="https://mc.example/sas", audience="GM/gm-north"
                )
            return (time.perf_counter() - started) / len(keys_without_cache) * 1e6

        full = asyncio.run(verify_fresh())
    print(f"sign (cache miss): {signed:8.1f} µs/call")  # noqa: T201
    print(f"cache hit:         {cached:8.2f} µs/call")  # noqa: T201
    print(f"service verifies:  {full:8.1f} µs/call (signature checked)")  # noqa: T201
    print(f"service, cached:   {verified:8.1f} µs/call (same assertion again)")  # noqa: T201


if __name__ == "__main__":
    main()
