"""Aggregate statistics with seeded bootstrap 95 % confidence intervals.

Owns how per-sample values become the numbers in `results.json`: a mean (or a pooled ratio of event
counts) with a percentile bootstrap interval over samples, and the same for the difference between two
paired or unpaired runs. Resampling is always over samples (conversations), never over events inside
one sample, so that events of the same conversation stay together. Knows nothing about tasks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95 % interval and the number of samples behind it.

    Attributes:
        value: the statistic on the full data (NaN when there was nothing to measure).
        low: 2.5th percentile of the bootstrap distribution.
        high: 97.5th percentile of the bootstrap distribution.
        n: number of samples (or events for pooled ratios: see `ratio`) that contributed.
    """

    value: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-ready dict; NaN becomes None."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Estimate:
        """Inverse of `to_dict`."""
        def f(x):
            return float("nan") if x is None else float(x)
        return cls(value=f(d["value"]), low=f(d["low"]), high=f(d["high"]), n=int(d["n"]))


NAN_ESTIMATE = Estimate(float("nan"), float("nan"), float("nan"), 0)


def _clean(values: Sequence[float | None]) -> np.ndarray:
    arr = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return arr[~np.isnan(arr)]


def mean_ci(values: Sequence[float | None], resamples: int = DEFAULT_RESAMPLES,
            seed: int = DEFAULT_SEED) -> Estimate:
    """Mean of `values` (None/NaN ignored) with a percentile bootstrap 95 % interval.

    Args:
        values: one number per sample (booleans count as 0/1).
        resamples: bootstrap resamples.
        seed: seed of the resampling generator (results are reproducible).
    """
    x = _clean(values)
    if x.size == 0:
        return NAN_ESTIMATE
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(resamples, x.size))
    boots = x[idx].mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return Estimate(float(x.mean()), float(lo), float(hi), int(x.size))


def ratio_ci(numerators: Sequence[float], denominators: Sequence[float],
             resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> Estimate:
    """Pooled ratio sum(num) / sum(den) with a bootstrap over samples (cluster bootstrap).

    Used for event rates (e.g. takeovers per user pause) where a sample holds several events.
    Samples with a zero denominator are kept (they carry no events). `n` is the number of events.

    Args:
        numerators: events that satisfied the condition, one count per sample.
        denominators: events, one count per sample.
        resamples: bootstrap resamples.
        seed: seed of the resampling generator.
    """
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    if num.shape != den.shape:
        raise ValueError("numerators and denominators must have the same length")
    total = den.sum()
    if num.size == 0 or total <= 0:
        return NAN_ESTIMATE
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, num.size, size=(resamples, num.size))
    bn, bd = num[idx].sum(axis=1), den[idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        boots = bn / bd
    boots = boots[~np.isnan(boots)]
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return Estimate(float(num.sum() / total), float(lo), float(hi), int(total))


def diff_ci(a: Sequence[float | None], b: Sequence[float | None], paired: bool = False,
            resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> Estimate:
    """Difference of means mean(b) - mean(a) with a bootstrap 95 % interval.

    Args:
        a: per-sample values of the baseline.
        b: per-sample values of the candidate.
        paired: resample the same indices in both (requires equal lengths; pairs with a None on
            either side are dropped); otherwise resample each independently.
        resamples: bootstrap resamples.
        seed: seed of the resampling generator.
    """
    rng = np.random.default_rng(seed)
    if paired:
        if len(a) != len(b):
            raise ValueError("paired difference needs equally long inputs")
        xa = np.array([np.nan if v is None else float(v) for v in a])
        xb = np.array([np.nan if v is None else float(v) for v in b])
        keep = ~(np.isnan(xa) | np.isnan(xb))
        d = xb[keep] - xa[keep]
        if d.size == 0:
            return NAN_ESTIMATE
        idx = rng.integers(0, d.size, size=(resamples, d.size))
        boots = d[idx].mean(axis=1)
        lo, hi = np.percentile(boots, [2.5, 97.5])
        return Estimate(float(d.mean()), float(lo), float(hi), int(d.size))
    xa, xb = _clean(a), _clean(b)
    if xa.size == 0 or xb.size == 0:
        return NAN_ESTIMATE
    ia = rng.integers(0, xa.size, size=(resamples, xa.size))
    ib = rng.integers(0, xb.size, size=(resamples, xb.size))
    boots = xb[ib].mean(axis=1) - xa[ia].mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return Estimate(float(xb.mean() - xa.mean()), float(lo), float(hi), int(min(xa.size, xb.size)))


def quantiles(values: Sequence[float | None], qs: Sequence[float] = (0.5, 0.9)) -> dict[str, float]:
    """Named quantiles (`p50`, `p90`, ...) of `values`; empty dict when there are none."""
    x = _clean(values)
    if x.size == 0:
        return {}
    return {f"p{round(q * 100)}": float(np.quantile(x, q)) for q in qs}
