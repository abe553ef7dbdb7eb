"""vrbench.stats against numbers computed independently: scipy.stats called directly, hand-worked examples,
published tables (Demšar 2006), and rliable/autorank where they are installed."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from vrbench.stats.bootstrap import aggregate_estimates, aggregate_iqm, aggregate_median, trimmed_mean
from vrbench.stats.compare import compare_scores, probability_of_improvement, spread_corrected
from vrbench.stats.intervals import cell_interval, t_interval
from vrbench.stats.paired import holm, mark_not_worse, one_sided_paired_p, one_sided_welch_p
from vrbench.stats.ranks import cliques, friedman, nemenyi_cd, rank_summary, ranks_per_dataset

NAN = np.nan


def test_t_interval_matches_scipy_and_a_hand_worked_example() -> None:
    # 60, 61, 62: mean 61, s = 1, t(0.975, 2) = 4.302653: 61 ± 4.302653 / sqrt(3) = 61 ± 2.484138
    low, high = cell_interval(61.0, 1.0, 3)
    assert (low, high) == pytest.approx((61 - 2.484138, 61 + 2.484138), abs=1e-6)
    values = np.array([70.1, 68.4, 71.9, 69.0])
    expected = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    assert cell_interval(values.mean(), values.std(ddof=1), 4) == pytest.approx(expected, abs=1e-9)
    assert cell_interval(50.0, None, 1) is None  # n=1: no interval
    low, high = t_interval(np.array([1.0, 2.0]), np.array([NAN, 1.0]), np.array([1, 5]))
    assert np.isnan(low[0]) and high[1] == pytest.approx(2 + stats.t.ppf(0.975, 4) / np.sqrt(5))


def test_paired_and_welch_p_match_scipy() -> None:
    best = np.array([70.0, 72.0, 71.0, 69.5])
    other = np.array([69.0, 71.5, 69.0, 69.4])
    p, n = one_sided_paired_p((best - other)[None])
    assert n[0] == 4 and p[0] == pytest.approx(stats.ttest_rel(best, other, alternative="greater").pvalue)
    a, b = np.array([70.0, 72.0, 71.0, NAN]), np.array([NAN, 65.0, 66.0, 68.0])
    welch = stats.ttest_ind(a[:3], b[1:], equal_var=False, alternative="greater").pvalue
    assert one_sided_welch_p(a[None], b[None])[0] == pytest.approx(welch)
    assert np.isnan(one_sided_paired_p(np.array([[1.0, NAN, NAN]]))[0][0])  # one shared seed: no test


def test_holm_matches_the_hand_worked_procedure() -> None:
    # p = 0.01, 0.04, 0.03 (m = 3): sorted 0.01*3 = 0.03, 0.03*2 = 0.06, max(0.06, 0.04*1) = 0.06
    assert holm(np.array([0.01, 0.04, 0.03])) == pytest.approx([0.03, 0.06, 0.06])
    out = holm(np.array([[0.2, NAN], [0.01, 0.5], [NAN, 0.001]]), axis=0)
    assert out[1, 0] == pytest.approx(0.02) and out[0, 0] == pytest.approx(0.2) and np.isnan(out[2, 0])
    assert out[2, 1] == pytest.approx(0.002) and out[1, 1] == pytest.approx(0.5)


def test_marks_keep_the_best_and_whatever_is_not_significantly_worse() -> None:
    scores = np.array([  # 3 rows (methods) x 2 columns (datasets) x 3 seeds
        [[80.0, 81.0, 82.0], [50.0, 51.0, NAN]],
        [[79.9, 81.2, 81.6], [40.0, NAN, NAN]],  # column 0: within noise of the best; column 1: one seed
        [[60.0, 61.0, 62.5], [10.0, 11.0, 12.0]],  # clearly worse in both
    ])
    marks = mark_not_worse(scores)
    assert list(marks.best) == [0, 0]
    assert marks.not_worse.tolist() == [[True, True], [True, False], [False, False]]
    p_raw = stats.ttest_rel(scores[0, 0], scores[2, 0], alternative="greater").pvalue
    p_mid = stats.ttest_rel(scores[0, 0], scores[1, 0], alternative="greater").pvalue
    assert marks.p_adjusted[2, 0] == pytest.approx(min(1, 2 * min(p_raw, p_mid)))
    assert np.isnan(marks.p_adjusted[1, 1])  # one seed against two that do not pair: untested, so not marked
    assert marks.paired[2, 0] and marks.paired[2, 1]


def test_marks_choose_the_best_by_the_shown_value_when_it_is_not_the_seed_mean() -> None:
    # A prompt table prints the HM of two seed means; the per-seed HMs it tests have another mean. Row 1 has the
    # higher mean of seed values (61.0 vs 60.5) but row 0 the higher printed value: row 0 is the best, and row 1
    # is tested against it (paired, one-sided: "row 0 > row 1" is not shown, so row 1 stays marked).
    scores = np.array([[[60.0, 61.0, 60.5]], [[62.0, 59.0, 62.0]], [[50.0, 51.5, 50.2]]])
    shown = np.array([[70.0], [69.0], [NAN]])  # row 2 shows nothing: never the best
    marks = mark_not_worse(scores, shown=shown)
    assert marks.best.tolist() == [0]
    p1 = stats.ttest_rel(scores[0, 0], scores[1, 0], alternative="greater").pvalue
    p2 = stats.ttest_rel(scores[0, 0], scores[2, 0], alternative="greater").pvalue
    assert marks.p_adjusted[1, 0] == pytest.approx(max(min(1, 2 * min(p1, p2)), max(p1, p2)))
    assert marks.not_worse[:, 0].tolist() == [True, True, False]
    assert mark_not_worse(scores).best.tolist() == [1]  # without ``shown``: the best seed mean


def test_trimmed_mean_median_and_iqm_match_scipy_and_rliable_definitions() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 13))
    assert trimmed_mean(x, 0.25) == pytest.approx(stats.trim_mean(x, 0.25, axis=-1))
    per_dataset = [rng.normal(size=3) for _ in range(6)]
    assert aggregate_iqm(per_dataset) == pytest.approx(stats.trim_mean(np.concatenate(per_dataset), 0.25))
    assert aggregate_median(per_dataset) == pytest.approx(np.median([v.mean() for v in per_dataset]))


def test_aggregate_intervals_are_deterministic_and_bracket_the_estimate() -> None:
    rng = np.random.default_rng(4)
    per_dataset = [60 + rng.normal(scale=2, size=3) for _ in range(10)]
    first, second = aggregate_estimates(per_dataset), aggregate_estimates(per_dataset)
    assert first == second  # fixed seed
    for estimate in first.values():
        assert estimate.low <= estimate.value <= estimate.high
    assert aggregate_estimates(per_dataset, seed=1)["IQM"] != first["IQM"]


def test_rliable_agrees_where_installed() -> None:
    """Point estimates and probability of improvement exactly as rliable.metrics computes them; the intervals
    against a plain loop over rliable's aggregate functions (rliable.library's bootstrap needs arch, whose import
    fails beside pandas 3: see docs/statistics.md), to bootstrap error."""
    metrics = pytest.importorskip("rliable.metrics")

    rng = np.random.default_rng(5)
    matrix = 70 + rng.normal(scale=3, size=(3, 8))  # runs x tasks, rliable's layout
    ours = aggregate_estimates(list(matrix.T), reps=4000)
    assert ours["IQM"].value == pytest.approx(metrics.aggregate_iqm(matrix))
    assert ours["mean"].value == pytest.approx(metrics.aggregate_mean(matrix))
    assert ours["median"].value == pytest.approx(metrics.aggregate_median(matrix))
    state = np.random.RandomState(0)
    replicates = {"mean": [], "IQM": []}
    for _ in range(4000):  # stratified: each task's runs resampled with replacement, tasks kept
        sample = np.stack([matrix[state.randint(0, 3, size=3), t] for t in range(8)], axis=1)
        replicates["mean"].append(metrics.aggregate_mean(sample))
        replicates["IQM"].append(metrics.aggregate_iqm(sample))
    for name, values in replicates.items():
        low, high = np.percentile(values, [2.5, 97.5])
        assert (ours[name].low, ours[name].high) == pytest.approx((low, high), abs=0.15)
    x, y = matrix, matrix - 1 + rng.normal(size=matrix.shape)
    ours_poi = np.mean([probability_of_improvement(x[:, t], y[:, t]) for t in range(8)])
    assert ours_poi == pytest.approx(metrics.probability_of_improvement(x, y))


def test_probability_of_improvement_hand_worked() -> None:
    # pairs (a > b): 3 > 1, 3 > 2, 2 > 1, 2 = 2 (half) -> 3.5 of 4
    assert probability_of_improvement(np.array([3.0, 2.0]), np.array([1.0, 2.0])) == pytest.approx(0.875)
    u = stats.mannwhitneyu([5, 1, 3], [2, 4], alternative="greater").statistic
    assert probability_of_improvement(np.array([5.0, 1, 3]), np.array([2.0, 4])) == pytest.approx(u / 6)


def test_ranks_friedman_and_critical_difference() -> None:
    means = np.array([[90.0, 80.0, 70.0, 60.0], [85.0, 80.0, 72.0, 50.0], [70.0, 60.0, 50.0, 55.0]])
    assert ranks_per_dataset(means) == pytest.approx(stats.rankdata(-means, axis=0))  # the tie on column 1
    statistic, p = friedman(means)
    expected = stats.friedmanchisquare(*means)
    assert (statistic, p) == pytest.approx((expected.statistic, expected.pvalue))
    # Demšar (2006), Table 5(a): q_0.05 = 2.343 (k=3), 2.569 (k=4), 3.164 (k=10); CD = q sqrt(k(k+1)/(6N))
    for k, q in ((3, 2.343), (4, 2.569), (10, 3.164)):
        assert nemenyi_cd(k, 12) == pytest.approx(q * np.sqrt(k * (k + 1) / 72), abs=2e-3)
    summary = rank_summary(["a", "b", "c"], means)
    assert summary.average_ranks == pytest.approx(tuple(stats.rankdata(-means, axis=0).mean(axis=1)))
    assert cliques(np.array([1.0, 1.5, 3.0, 3.2]), cd=0.6) == [(0, 1), (2, 3)]
    assert cliques(np.array([1.0, 2.0, 3.0]), cd=5) == [(0, 2)]


def test_autorank_agrees_where_installed() -> None:
    autorank = pytest.importorskip("autorank")
    import pandas as pd

    rng = np.random.default_rng(6)
    means = rng.uniform(50, 90, size=(5, 12))
    frame = pd.DataFrame(means.T, columns=[f"m{i}" for i in range(5)])
    result = autorank.autorank(frame, alpha=0.05, verbose=False, force_mode="nonparametric")
    ours = rank_summary(list(frame.columns), means)
    assert ours.cd == pytest.approx(result.cd, rel=1e-4)
    assert dict(zip(ours.labels, ours.average_ranks, strict=True)) == pytest.approx(
        {name: rank for name, rank in result.rankdf["meanrank"].items()})


def test_compare_hand_worked_and_against_scipy() -> None:
    pairs = {"d1": (np.array([70.0, 72.0, 71.0]), np.array([68.0, 70.5, 70.0])),
             "d2": (np.array([50.0, 52.0]), np.array([51.0, 51.5])), "d3": (np.array([40.0]), np.array([41.0]))}
    result = compare_scores(pairs)
    d1 = result.datasets[0]
    assert (d1.mean_diff, d1.n) == pytest.approx((1.5, 3))  # differences 2, 1.5, 1
    assert (d1.ci_low, d1.ci_high) == pytest.approx(stats.t.interval(0.95, 2, 1.5, stats.sem([2, 1.5, 1])))
    assert result.datasets[2].ci_low is None and result.datasets[2].outcome == "tie"
    assert result.mean_diff == pytest.approx((1.5 + (-1.0 + 0.5) / 2 - 1.0) / 3)
    assert result.p_value == pytest.approx(stats.wilcoxon([1.5, -0.25, -1.0]).pvalue)
    assert result.counts == {"win": 1, "tie": 2, "loss": 0}
    assert result.ci_low <= result.mean_diff <= result.ci_high
    assert compare_scores(pairs) == result  # deterministic
    corrected = spread_corrected(np.array([2.0, 1.5, 1.0]))
    assert corrected.mean() == pytest.approx(1.5) and corrected.var() == pytest.approx(np.var([2, 1.5, 1], ddof=1))


def synthetic(rng: np.random.Generator, margin: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """10 datasets x 3 seeds; each dataset its own level, each seed a shared effect plus noise."""
    pairs = {}
    for d in range(10):
        level, seed_effect = rng.uniform(40, 90), rng.normal(scale=2.0, size=3)
        a = level + margin + seed_effect + rng.normal(scale=1.0, size=3)
        b = level + seed_effect + rng.normal(scale=1.0, size=3)
        pairs[f"d{d}"] = (a, b)
    return pairs


def test_calibration_finds_a_known_margin() -> None:
    result = compare_scores(synthetic(np.random.default_rng(7), margin=2.0))
    assert result.ci_low > 0 and result.p_value < 0.01 and result.prob_improvement > 0.8
    assert result.mean_diff == pytest.approx(2.0, abs=0.6)
    assert result.counts["loss"] == 0


def test_calibration_covers_zero_when_methods_are_alike() -> None:
    covered = sum(1 for repeat in range(100) if (lambda r: r.ci_low <= 0 <= r.ci_high)(
        compare_scores(synthetic(np.random.default_rng(1000 + repeat), margin=0.0), reps=2000)))
    assert covered >= 90, covered


def test_bootstrap_from_counts_equals_the_materialised_resamples() -> None:
    """The counts shortcut gives exactly the statistics of the resamples themselves (same generator draws)."""
    from vrbench.stats.bootstrap import AGGREGATES, _from_counts, resample, resample_counts

    rng = np.random.default_rng(8)
    per_dataset = [rng.normal(size=n) for n in (3, 2, 5, 1, 3)]
    direct = resample(per_dataset, 500, np.random.default_rng(0))
    counts = resample_counts(tuple(len(v) for v in per_dataset), 500, np.random.default_rng(0))
    shortcut = _from_counts(per_dataset, counts)
    for name, statistic in AGGREGATES.items():
        assert shortcut[name] == pytest.approx(statistic(direct), abs=1e-12), name
