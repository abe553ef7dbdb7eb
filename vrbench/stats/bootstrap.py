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


def resample_counts(sizes: tuple[int, ...], reps: int, rng: np.random.Generator) -> np.ndarray:
    """(reps, N) how often each of the N = sum(sizes) runs is drawn in each stratified resample: the same draws
    as :func:`resample` (the same generator calls), kept as counts so that a statistic needs no gathered copy."""
    total = sum(sizes)
    offsets = np.cumsum((0, *sizes[:-1]))
    picks = np.concatenate([rng.integers(0, n, size=(reps, n)) + offset for n, offset in zip(sizes, offsets,
                                                                                              strict=True)], axis=1)
    picks += (np.arange(reps) * total)[:, None]
    counts = np.bincount(picks.ravel(), minlength=reps * total).reshape(reps, total)
    return counts.astype(np.int16 if total < 2**15 else np.int64)  # small: the IQM's passes are memory-bound


def _from_counts(per_dataset: list[np.ndarray], counts: np.ndarray) -> dict[str, np.ndarray]:
    """Mean, median and IQM of every resample described by ``counts``, without materialising the resamples:
    dataset means by summing counts x values per dataset block, the IQM as a weighted sum over the sorted runs
    (each run's copies that fall inside the middle 50 % of the resample's order). No BLAS call: on small
    matrices its thread start-up costs more than the arithmetic."""
    sizes = np.array([len(v) for v in per_dataset])
    values = np.concatenate(per_dataset)
    total = len(values)
    means = np.add.reduceat(counts * values, np.cumsum(sizes) - sizes, axis=1) / sizes  # (reps, datasets)
    ordered_means = np.sort(means, axis=1)
    middle = means.shape[1] // 2
    median = ordered_means[:, middle] if means.shape[1] % 2 else (ordered_means[:, middle - 1]
                                                                  + ordered_means[:, middle]) / 2
    order = np.argsort(values, kind="stable")
    ordered = counts[:, order]
    above = np.cumsum(ordered, axis=1, dtype=counts.dtype)  # at most ``total``: fits the counts' type
    low = int(0.25 * total)
    kept = np.clip(above, low, total - low)
    kept -= np.clip(above - ordered, low, total - low)
    iqm = np.einsum("ij,j->i", kept, values[order]) / (total - 2 * low)
    return {"mean": means.mean(axis=1), "median": median, "IQM": iqm}


def aggregate_estimates(per_dataset: list[np.ndarray], reps: int = BOOTSTRAP_REPS, seed: int = BOOTSTRAP_SEED,
                        confidence: float = CONFIDENCE,
                        counts_cache: dict[tuple[int, ...], np.ndarray] | None = None) -> dict[str, Estimate]:
    """Mean, median and IQM of one method's scores (one array of seed scores per dataset) with stratified
    bootstrap percentile intervals: the protocol of rliable's ``get_interval_estimates`` (percentile method).

    The resamples depend only on the seed counts per dataset and ``seed``, so a row's intervals never change
    because other rows are added; ``counts_cache`` shares them between rows of the same shape."""
    per_dataset = [np.asarray(v, dtype=float) for v in per_dataset]
    sizes = tuple(len(v) for v in per_dataset)
    cache = {} if counts_cache is None else counts_cache
    if sizes not in cache:
        cache[sizes] = resample_counts(sizes, reps, np.random.default_rng(seed))
    samples = _from_counts(per_dataset, cache[sizes])
    out = {}
    for name, statistic in AGGREGATES.items():
        low, high = percentile_interval(samples[name], confidence)
        out[name] = Estimate(float(statistic(per_dataset)), low, high)
    return out
