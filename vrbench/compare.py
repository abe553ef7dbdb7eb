"""``vrbench compare A B``: is method A better than method B on the runs of a results directory?

The seeds behind the report's cells (:func:`vrbench.report.model.load_scores`, one read-only connection) are
paired by (backbone, dataset, seed); what is computed from them is :func:`vrbench.stats.compare.compare_scores`.
Runs without a partner (a seed, or a whole dataset, that the other method lacks) are left out and counted.
"""

from __future__ import annotations

import difflib
import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vrbench.errors import ConfigError, ResultsError
from vrbench.report.model import RULES, load_scores
from vrbench.stats.compare import Comparison, compare_scores
from vrbench.store.db import check_schema, connect

if TYPE_CHECKING:
    from rich.console import Console


def paired_scores(db_path: Path, a: str, b: str, rule: str, backbone: str | None = None,
                  run_ids: set[str] | None = None) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, int]]:
    """(unit -> (A's scores, B's scores) over their shared seeds, runs left out per method). A unit is a dataset,
    or "dataset · backbone" when the methods share more than one backbone."""
    if rule not in RULES:
        raise ConfigError(f"unknown selection rule {rule!r}: choose from {', '.join(RULES)}")
    if a == b:
        raise ConfigError(f"compare two different methods (both are {a!r})")
    con = connect(db_path, read_only=True)
    try:
        check_schema(con, db_path)
        scores = load_scores(con, run_ids)
    finally:
        con.close()
    known = sorted({s[0] for s in scores})
    for name in (a, b):
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"no finished run of method {name!r} in this scope.{hint} Known: {', '.join(known)}.")
    by_method: dict[str, dict[tuple[str, str], dict[object, float]]] = {a: defaultdict(dict), b: defaultdict(dict)}
    for method, run_backbone, dataset, run_rule, _groups, seed, acc in scores:
        if method in by_method and run_rule == rule and backbone in (None, run_backbone):
            by_method[method][(run_backbone, dataset)][seed] = acc
    if backbone is not None and not (by_method[a] or by_method[b]):
        raise ConfigError(f"no run of {a} or {b} on backbone {backbone!r} under the {rule} rule")
    units = sorted(set(by_method[a]) & set(by_method[b]), key=lambda u: (u[1], u[0]))
    several = len({u[0] for u in units}) > 1
    pairs, left_out = {}, {"a": 0, "b": 0}
    for key in sorted(set(by_method[a]) | set(by_method[b])):
        seeds_a, seeds_b = by_method[a].get(key, {}), by_method[b].get(key, {})
        shared = sorted(set(seeds_a) & set(seeds_b), key=lambda s: (s is None, s))
        left_out["a"] += len(seeds_a) - len(shared)
        left_out["b"] += len(seeds_b) - len(shared)
        if shared:
            name = f"{key[1]} · {key[0]}" if several else key[1]
            pairs[name] = (np.array([seeds_a[s] for s in shared]), np.array([seeds_b[s] for s in shared]))
    if not pairs:
        raise ResultsError(f"{a} and {b} share no (backbone, dataset, seed) under the {rule} rule: nothing to pair"
                           + ("" if backbone else " (try --backbone)"))
    return dict(sorted(pairs.items())), left_out


def compare_methods(db_path: Path, a: str, b: str, rule: str, backbone: str | None = None,
                    run_ids: set[str] | None = None) -> Comparison:
    pairs, left_out = paired_scores(db_path, a, b, rule, backbone, run_ids)
    return compare_scores(pairs, unpaired=left_out)


def as_json(result: Comparison, a: str, b: str, rule: str, backbone: str | None) -> str:
    return json.dumps({"a": a, "b": b, "rule": rule, "backbone": backbone, **result.as_json()}, indent=2)


def _num(value: float | None, digits: int = 2, signed: bool = True) -> str:
    if value is None:
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def print_table(result: Comparison, a: str, b: str, rule: str, console: Console) -> None:
    """Per dataset, then across datasets, then what was left out."""
    from rich.table import Table

    table = Table(title=f"{a} − {b}, test accuracy points ({rule} rule)", title_justify="left")
    for column in ("dataset", "n", "mean diff", "95 % CI", "P(A > B)", "outcome"):
        table.add_column(column, justify="left" if column in ("dataset", "outcome") else "right")
    for d in result.datasets:
        interval = "n=1: no interval" if d.ci_low is None else f"[{_num(d.ci_low)}, {_num(d.ci_high)}]"
        table.add_row(d.name, str(d.n), _num(d.mean_diff), interval, f"{d.prob_improvement:.2f}", d.outcome)
    console.print(table)
    counts = result.counts
    p = "—" if result.p_value is None else f"{result.p_value:.3g}"
    lines = [
        f"across {len(result.datasets)} datasets: mean difference {_num(result.mean_diff)} "
        f"[{_num(result.ci_low)}, {_num(result.ci_high)}] (95 % stratified bootstrap over seeds, {result.reps} "
        f"resamples, seed {result.seed})",
        f"wins / ties / losses: {counts['win']} / {counts['tie']} / {counts['loss']} (a win: the dataset's 95 % "
        "interval of A − B lies above 0)",
        f"Wilcoxon signed-rank p over the datasets' mean differences: {p}; probability of improvement "
        f"P(A > B): {_num(result.prob_improvement, signed=False)}",
        f"left out (no partner seed): {result.unpaired.get('a', 0)} run(s) of {a}, {result.unpaired.get('b', 0)} "
        f"run(s) of {b}",
    ]
    if rule == "best_test":
        lines.append("note: best_test selects the epoch on the test set (optimistic for both methods alike); "
                     "see docs/statistics.md")
    for line in lines:
        console.print(line, highlight=False)
