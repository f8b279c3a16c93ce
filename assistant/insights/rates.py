"""A rate with its sample size and a confidence interval, and a mean with its interval.

Every number the Insights tab shows comes with the count it was computed from; a rate comes
with its Wilson score interval (scipy's ``binomtest``), which stays inside [0, 1] and is
sensible for small counts and rates near 0 or 1, where the normal approximation is not.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binomtest, t

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Rate:
    """``part`` of ``whole`` (e.g. customers who came back of those in the cohort)."""

    part: int
    whole: int
    low: float | None
    high: float | None

    @property
    def value(self) -> float | None:
        return self.part / self.whole if self.whole else None

    def as_dict(self) -> dict[str, Any]:
        return {"rate": self.value, "n": self.whole, "count": self.part,
                "low": self.low, "high": self.high}


def rate(part: int, whole: int, confidence: float = CONFIDENCE) -> Rate:
    """``part / whole`` with its Wilson interval; no interval (None) when ``whole`` is 0."""
    part, whole = int(part), int(whole)
    if not 0 <= part <= whole:
        raise ValueError(f"a rate needs 0 <= part <= whole, got {part} of {whole}")
    if whole == 0:
        return Rate(0, 0, None, None)
    ci = binomtest(part, whole).proportion_ci(confidence_level=confidence, method="wilson")
    return Rate(part, whole, float(ci.low), float(ci.high))


@dataclass(frozen=True)
class Mean:
    """The mean of ``n`` values with a t interval (None below 2 values)."""

    value: float | None
    n: int
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"mean": self.value, "n": self.n, "low": self.low, "high": self.high}


def mean(values: Any, confidence: float = CONFIDENCE) -> Mean:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return Mean(None, 0, None, None)
    m = float(x.mean())
    if n < 2:
        return Mean(m, 1, None, None)
    half = float(t.ppf((1 + confidence) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Mean(m, n, m - half, m + half)
