"""The one retry delay (asgate.kernel.backoff), as every retrying loop uses it."""

from __future__ import annotations

import pytest

from asgate.kernel.backoff import backoff


@pytest.mark.parametrize(
    ("attempt", "base", "cap", "rand", "expected"),
    [
        (1, 1.0, 300.0, 0.0, 0.5),  # half of the base is fixed ...
        (1, 1.0, 300.0, 1.0, 1.0),  # ... the other half random
        (1, 1.0, 16.0, 0.999, 0.9995),
        (2, 1.0, 300.0, 0.0, 1.0),  # doubling per attempt
        (2, 1.0, 300.0, 1.0, 2.0),
        (4, 1.0, 16.0, 1.0, 8.0),
        (5, 1.0, 300.0, 0.0, 8.0),
        (5, 1.0, 300.0, 1.0, 16.0),
        (5, 1.0, 16.0, 0.0, 8.0),  # the cap reached
        (20, 1.0, 300.0, 0.0, 150.0),
        (20, 1.0, 300.0, 1.0, 300.0),
        (50, 1.0, 30.0, 1.0, 30.0),
        (5000, 0.5, 30.0, 1.0, 30.0),  # a loop retrying for days never overflows
        (3, 0.05, 0.2, 1.0, 0.2),  # the SDK's short delays in tests
    ],
)
def test_backoff_doubles_with_half_of_it_random_up_to_the_cap(
    attempt: int, base: float, cap: float, rand: float, expected: float
) -> None:
    assert backoff(attempt, base, cap, rand=lambda: rand) == pytest.approx(expected)


def test_backoff_draws_its_jitter_itself_by_default() -> None:
    delays = {backoff(3, 1.0, 300.0) for _ in range(50)}
    assert all(2.0 <= d <= 4.0 for d in delays) and len(delays) > 1
