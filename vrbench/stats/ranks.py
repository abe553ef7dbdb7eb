"""Average ranks across datasets, the Friedman test and the Nemenyi critical difference (Demšar, JMLR 2006).

Input: a (methods, datasets) matrix of mean accuracies with no gaps (every method on every dataset). Rank 1 is
the best (highest) accuracy on a dataset; ties share the average of their ranks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from vrbench.stats import ALPHA


def ranks_per_dataset(means: np.ndarray) -> np.ndarray:
    """(methods, datasets) ranks, 1 = highest mean, ties averaged (as ``scipy.stats.rankdata(-x, axis=0)``)."""
    order = np.argsort(-means, axis=0, kind="stable")
    ordinal = np.empty_like(means)
    np.put_along_axis(ordinal, order, np.arange(1, means.shape[0] + 1, dtype=float)[:, None], axis=0)
    ranks = ordinal.copy()
    for column in range(means.shape[1]):  # ties are rare: average only the tied groups
        values, inverse, counts = np.unique(means[:, column], return_inverse=True, return_counts=True)
        if counts.max() > 1:
            sums = np.bincount(inverse, weights=ordinal[:, column])
            ranks[:, column] = (sums / counts)[inverse]
    return ranks


def friedman(means: np.ndarray) -> tuple[float, float]:
    """(chi-square statistic, p) of the Friedman test with the tie correction, as ``scipy.stats.friedmanchisquare``
    (methods are its groups, datasets its blocks); needs at least 3 methods and 2 datasets."""
    from scipy.special import chdtrc

    k, n = means.shape
    ranks = ranks_per_dataset(means)
    ties = 0.0
    for column in range(n):
        _, counts = np.unique(means[:, column], return_counts=True)
        ties += float(np.sum(counts**3 - counts))
    correction = 1.0 - ties / (n * k * (k * k - 1))
    sums = ranks.sum(axis=1)
    statistic = (12.0 / (n * k * (k + 1)) * np.sum(sums**2) - 3.0 * n * (k + 1)) / correction
    return float(statistic), float(chdtrc(k - 1, statistic))


@lru_cache(maxsize=64)
def studentized_range_quantile(k: int, probability: float = 1 - ALPHA) -> float:
    """Quantile of the range of k independent standard normals (the studentized range with infinite df).

    P(range <= q) = k ∫ φ(z) [Φ(z + q) − Φ(z)]^(k−1) dz, integrated on a fine grid and inverted by bisection:
    ``scipy.stats.studentized_range`` gives the same to 1e-6 but costs seconds to import."""
    from scipy.special import ndtr

    z = np.linspace(-9.0, 9.0, 7201)
    density = np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
    base = ndtr(z)

    def cdf(q: float) -> float:
        return float(k * np.trapezoid(density * (ndtr(z + q) - base) ** (k - 1), z))

    low, high = 0.0, 20.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if cdf(middle) < probability else (low, middle)
    return (low + high) / 2


def nemenyi_cd(k: int, n: int, alpha: float = ALPHA) -> float:
    """Critical difference of average ranks: q_alpha · sqrt(k (k + 1) / (6 n)), q_alpha = q(k, ∞) / sqrt(2)."""
    q = studentized_range_quantile(k, 1 - alpha) / np.sqrt(2)
    return float(q * np.sqrt(k * (k + 1) / (6.0 * n)))


def cliques(average_ranks: np.ndarray, cd: float) -> list[tuple[int, int]]:
    """Maximal runs of methods (indices into the rank-sorted order) whose average ranks lie within ``cd``: the
    bars of a critical-difference diagram. Single methods are not listed."""
    ordered = np.sort(average_ranks)
    spans = []
    for start in range(len(ordered)):
        end = int(np.searchsorted(ordered, ordered[start] + cd + 1e-12, side="right")) - 1
        if end > start and not any(s <= start and end <= e for s, e in spans):
            spans.append((start, end))
    return spans


@dataclass(frozen=True)
class RankSummary:
    """Average ranks of the methods (labels in the same order), Friedman's test and Nemenyi's CD."""

    labels: tuple[str, ...]
    average_ranks: tuple[float, ...]
    n_datasets: int
    friedman_statistic: float | None  # None with fewer than 3 methods (the test needs k >= 3)
    friedman_p: float | None
    cd: float


def rank_summary(labels: list[str], means: np.ndarray, alpha: float = ALPHA) -> RankSummary:
    k, n = means.shape
    average = ranks_per_dataset(means).mean(axis=1)
    statistic, p = friedman(means) if k >= 3 else (None, None)
    return RankSummary(tuple(labels), tuple(float(r) for r in average), n, statistic, p, nemenyi_cd(k, n, alpha))
