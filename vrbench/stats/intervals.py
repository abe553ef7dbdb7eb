"""The 95 % t-interval of a mean over n seeds: mean ± t(0.975, n-1) · s / sqrt(n); none for n = 1."""

from __future__ import annotations

import numpy as np

from vrbench.stats import CONFIDENCE


def t_quantile(probability: float, df: np.ndarray | float) -> np.ndarray:
    """Student's t quantile (``scipy.special.stdtrit``: cheap to import, unlike ``scipy.stats``)."""
    from scipy.special import stdtrit

    return stdtrit(np.asarray(df, dtype=float), probability)


def t_sf(t: np.ndarray | float, df: np.ndarray | float) -> np.ndarray:
    """P(T > t) for Student's t with ``df`` degrees of freedom."""
    from scipy.special import stdtr

    return stdtr(np.asarray(df, dtype=float), -np.asarray(t, dtype=float))


def t_interval(mean: np.ndarray | float, std: np.ndarray | float | None, n: np.ndarray | int,
               confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of the two-sided t-interval, element-wise; NaN where n < 2 or std is missing."""
    mean = np.asarray(mean, dtype=float)
    std = np.asarray(np.nan if std is None else std, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        df = np.where(n >= 2, n - 1, np.nan)
        half = t_quantile(0.5 + confidence / 2, df) * std / np.sqrt(n)
    return mean - half, mean + half


def cell_interval(mean: float, std: float | None, n: int) -> tuple[float, float] | None:
    """One cell's interval as floats, or None for a single seed ("n=1: no interval")."""
    if n < 2 or std is None:
        return None
    low, high = t_interval(mean, std, n)
    return float(low), float(high)
