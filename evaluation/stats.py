"""Small statistics for success rates."""

from __future__ import annotations

import math


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion (95 % by default), as fractions in [0, 1].

    Unlike the normal approximation it stays inside [0, 1] and is not zero-width at 0/n or n/n,
    which is what a 5/5 or 0/30 cell in a trials table needs:

        >>> [round(x, 4) for x in wilson_interval(5, 5)]
        [0.5655, 1.0]
        >>> [round(x, 4) for x in wilson_interval(15, 30)]
        [0.3315, 0.6685]
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"wilson_interval needs 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    lo, hi = centre - half, centre + half
    # exact endpoints at the extremes (floating point leaves 1e-17 crumbs)
    return (0.0 if successes == 0 else max(0.0, lo), 1.0 if successes == n else min(1.0, hi))
