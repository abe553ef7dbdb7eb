"""Stratified bootstrap over seeds (resampling each dataset's seeds with replacement, datasets fixed) and the
aggregates of rliable (Agarwal et al., NeurIPS 2021): mean and median of the per-dataset means, and the
interquartile mean of all runs, each with a percentile interval."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vrbench.stats import BOOTSTRAP_REPS, BOOTSTRAP_SEED, CONFIDENCE


def resample(strata: list[np.ndarray], reps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``reps`` resamples of every stratum, each of its own size: a list of (reps, n_d) arrays."""
    return [values[rng.integers(0, len(values), size=(reps, len(values)))] for values in strata]


def trimmed_mean(values: np.ndarray, cut: float = 0.25, axis: int = -1) -> np.ndarray:
    """Mean after cutting int(cut · n) values from each end along ``axis`` (as ``scipy.stats.trim_mean``)."""
    ordered = np.sort(values, axis=axis)
    n = ordered.shape[axis]
    low = int(cut * n)
    return np.take(ordered, np.arange(low, n - low), axis=axis).mean(axis=axis)


def aggregate_mean(per_dataset: list[np.ndarray]) -> np.ndarray:
    """Mean over datasets of each dataset's mean over seeds (arrays shaped (..., n_d))."""
    return np.mean([values.mean(axis=-1) for values in per_dataset], axis=0)


def aggregate_median(per_dataset: list[np.ndarray]) -> np.ndarray:
    """Median over datasets of each dataset's mean over seeds."""
    return np.median([values.mean(axis=-1) for values in per_dataset], axis=0)


def aggregate_iqm(per_dataset: list[np.ndarray]) -> np.ndarray:
    """Interquartile mean of all runs of all datasets pooled (rliable's IQM: the middle 50 % of runs)."""
    return trimmed_mean(np.concatenate(per_dataset, axis=-1), 0.25)


AGGREGATES = {"mean": aggregate_mean, "median": aggregate_median, "IQM": aggregate_iqm}


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its percentile bootstrap interval."""

    value: float
    low: float
    high: float


def percentile_interval(samples: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def aggregate_estimates(per_dataset: list[np.ndarray], reps: int = BOOTSTRAP_REPS, seed: int = BOOTSTRAP_SEED,
                        confidence: float = CONFIDENCE) -> dict[str, Estimate]:
    """Mean, median and IQM of one method's scores (one array of seed scores per dataset) with stratified
    bootstrap percentile intervals: the protocol of rliable's ``get_interval_estimates`` (percentile method)."""
    rng = np.random.default_rng(seed)
    samples = resample([np.asarray(v, dtype=float) for v in per_dataset], reps, rng)
    out = {}
    for name, statistic in AGGREGATES.items():
        low, high = percentile_interval(statistic(samples), confidence)
        out[name] = Estimate(float(statistic([np.asarray(v, dtype=float) for v in per_dataset])), low, high)
    return out
