"""Paired tests over seeds, vectorised over whole tables, and Holm's correction.

Scores arrive as arrays ``(rows, columns, seeds)`` with NaN where a row has no run of that seed: one row of a
leaderboard is one method, a column one dataset, and the seed axis is the union of the seeds in the table. Two
cells pair on the seeds both have, so a method's bad seed is compared with the other method's same seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vrbench.stats import ALPHA
from vrbench.stats.intervals import t_sf

MARK_TEST = ("one-sided paired t-test over the seeds both cells share, or Welch's t-test where fewer than two "
             "seeds pair; Holm-corrected across the column; α = 0.05")


def holm(p: np.ndarray, axis: int = 0) -> np.ndarray:
    """Holm's step-down adjusted p-values along ``axis``; NaN (no test) stays NaN and does not count in m."""
    p = np.moveaxis(np.asarray(p, dtype=float), axis, -1)
    tested = ~np.isnan(p)
    m = tested.sum(axis=-1, keepdims=True)
    order = np.argsort(np.where(tested, p, np.inf), axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1)
    factor = m - np.arange(p.shape[-1])  # m, m-1, ... for the 1st, 2nd, ... smallest p
    adjusted = np.minimum(1.0, np.fmax.accumulate(ranked * factor, axis=-1))
    adjusted[np.isnan(ranked)] = np.nan  # NaNs sort last, so the running maximum never passes through them
    out = np.empty_like(p)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return np.moveaxis(out, -1, axis)


def one_sided_paired_p(diffs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p, n) of the paired t-test of H1: mean(diffs) > 0 along the last axis (NaN = unpaired seed).

    p is NaN where fewer than two seeds pair. Zero spread is decided by the sign: p = 0 for a positive mean
    difference, 1 otherwise (the t statistic is infinite or undefined there)."""
    n = np.sum(~np.isnan(diffs), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(np.where(n[..., None] > 0, diffs, 0.0), axis=-1)
        std = _nanstd(diffs, n)
        t = mean / (std / np.sqrt(n))
        p = t_sf(t, n - 1)
    p = np.where(std == 0, np.where(mean > 0, 0.0, 1.0), p)
    return np.where(n >= 2, p, np.nan), n


def one_sided_welch_p(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """p of Welch's t-test of H1: mean(a) > mean(b), seeds along the last axis; NaN unless both have n >= 2."""
    na, nb = np.sum(~np.isnan(a), axis=-1), np.sum(~np.isnan(b), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        va, vb = _nanstd(a, na) ** 2 / na, _nanstd(b, nb) ** 2 / nb
        diff = _nanmean(a, na) - _nanmean(b, nb)
        df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
        p = t_sf(diff / np.sqrt(va + vb), df)
    p = np.where(va + vb == 0, np.where(diff > 0, 0.0, 1.0), p)
    return np.where((na >= 2) & (nb >= 2), p, np.nan)


def _nanmean(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    return np.where(n > 0, np.nansum(x, axis=-1) / np.maximum(n, 1), np.nan)


def _nanstd(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Sample standard deviation (ddof=1) ignoring NaN; NaN where n < 2 (no warnings for empty slices)."""
    mean = _nanmean(x, n)
    squares = np.nansum((x - mean[..., None]) ** 2, axis=-1)
    return np.where(n >= 2, np.sqrt(squares / np.maximum(n - 1, 1)), np.nan)


@dataclass(frozen=True)
class Marks:
    """Per (row, column): whether the cell is not significantly worse than its column's best mean."""

    not_worse: np.ndarray  # bool (rows, columns); the best cell itself is True, a missing cell False
    best: np.ndarray  # int (columns,): the row with the best mean, -1 for an empty column
    p_adjusted: np.ndarray  # Holm-adjusted one-sided p (best better than the row); NaN = not tested
    paired: np.ndarray  # bool: the test paired seeds (else Welch's, or none)


def mark_not_worse(scores: np.ndarray, alpha: float = ALPHA, shown: np.ndarray | None = None) -> Marks:
    """For every column, test each cell against the column's best mean; see :data:`MARK_TEST`.

    ``shown`` (rows, columns): the values the table prints, when they are not the mean of the seed scores (an HM
    of two seed means): the best is the cell with the best shown value, tested with its seed scores.
    A cell that cannot be tested (a single seed on either side and no two shared seeds) is not marked: the
    legend says so, so an unmarked cell reads "worse or untested", never "worse" alone."""
    rows, columns, _ = scores.shape
    present = ~np.isnan(scores)
    n = present.sum(axis=-1)
    means = _nanmean(scores, n) if shown is None else np.asarray(shown, dtype=float)
    has_any = n.sum(axis=0) > 0
    best = np.where(has_any, np.argmax(np.where((n > 0) & ~np.isnan(means), means, -np.inf), axis=0), -1)
    best_scores = scores[np.maximum(best, 0), np.arange(columns)]  # (columns, seeds)
    p_paired, n_paired = one_sided_paired_p(best_scores[None] - scores)
    p_welch = one_sided_welch_p(np.broadcast_to(best_scores[None], scores.shape), scores)
    paired = n_paired >= 2
    p = np.where(paired, p_paired, p_welch)
    is_best = (np.arange(rows)[:, None] == best[None, :]) & has_any[None, :]
    p = np.where(is_best | (n == 0), np.nan, p)
    adjusted = holm(p, axis=0)
    not_worse = is_best | ((n > 0) & ~np.isnan(adjusted) & (adjusted >= alpha))
    return Marks(not_worse, best, adjusted, paired & ~is_best)
