"""``vrbench compare A B``: is method A better than method B on the runs of a results directory?

The seeds behind the report's cells (:func:`vrbench.report.model.load_scores` for the leaderboards,
:func:`vrbench.report.prompt.load_prompt_runs` for prompt learning; one read-only connection) are paired by
(backbone, dataset, seed); what is computed from them is :func:`vrbench.stats.compare.compare_scores`. Runs without
a partner (a seed, or a whole dataset, that the other method lacks) are left out and counted. Prompt-learning runs
are compared within one protocol and one setting (shots, base or novel classes, source dataset), chosen by the
user or inferred when the two methods share only one.
"""

from __future__ import annotations

import difflib
import json
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vrbench.errors import ConfigError, ResultsError
from vrbench.report.model import PROMPT_PROTOCOLS, RULES, load_scores
from vrbench.report.prompt import (
    PROMPT_RULE,
    TRAINING_FREE,
    TRANSFER_PROTOCOLS,
    PromptRun,
    harmonic_mean,
    load_prompt_runs,
    transfer_runs,
)
from vrbench.stats.compare import Comparison, compare_scores
from vrbench.store.db import check_schema, connect

if TYPE_CHECKING:
    from rich.console import Console


VR = "vr"
# The axes that tell apart one prompt-learning protocol's jobs on one dataset (a training-free method's accuracy
# does not depend on the shots, so its shots match any).
SETTING_AXES: dict[str, tuple[str, ...]] = {"base2novel": ("shots", "subsample"), "fewshot": ("shots",),
                                            "cross_dataset": ("shots", "source_dataset"),
                                            "domain_generalization": ("shots", "source_dataset")}
_ANY = "any"
SOURCE_SUFFIX = "(source)"  # a transfer table's source: compared, but not in the average over its targets
_OPTION = {"shots": "--shots", "subsample": "--subsample", "source_dataset": "--source-dataset"}
SUBSAMPLE_ALIASES = {"novel": "new"}
HM = "hm"  # base2novel: compare the per-seed HM of base and novel


@dataclass(frozen=True)
class Choice:
    """What the user asked to compare beyond the two methods (None = not chosen: vrbench infers it when only
    one value is present and says which ones are when several are)."""

    protocol: str | None = None
    shots: int | None = None
    subsample: str | None = None
    source_dataset: str | None = None

    def given(self) -> dict[str, object]:
        return {axis: getattr(self, axis) for axis in _OPTION if getattr(self, axis) is not None}


@dataclass(frozen=True)
class Selection:
    """What was compared: the protocol ("vr" for the leaderboards), the selection rule and, for prompt learning,
    the setting (e.g. {"shots": 16, "subsample": "new"})."""

    protocol: str
    rule: str
    setting: dict[str, object] = field(default_factory=dict)


Units = dict[str, dict[tuple[str, str], dict[object, list[float]]]]  # method -> (backbone, dataset) -> seed -> accs


def paired_scores(db_path: Path, a: str, b: str, rule: str | None, backbone: str | None = None,
                  run_ids: set[str] | None = None, choice: Choice = Choice(),
                  ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, int], Selection]:
    """(unit -> (A's scores, B's scores) over their shared seeds, runs left out per method, what was compared).
    A unit is a dataset, or "dataset · backbone" when the methods share more than one backbone; a transfer
    table's source is "<dataset> (source)"."""
    if a == b:
        raise ConfigError(f"compare two different methods (both are {a!r})")
    if choice.protocol is not None and choice.protocol not in (VR, *PROMPT_PROTOCOLS):
        raise ConfigError(f"unknown protocol {choice.protocol!r}: choose from {', '.join((VR, *PROMPT_PROTOCOLS))}")
    con = connect(db_path, read_only=True)
    try:
        check_schema(con, db_path)
        scores = load_scores(con, run_ids)
        prompt_runs = load_prompt_runs(con, run_ids)
    finally:
        con.close()
    protocols: dict[str, set[str]] = defaultdict(set)
    for score in scores:
        protocols[score[0]].add(VR)
    for run in prompt_runs:
        protocols[run.method].add(run.protocol)
    known = sorted(protocols)
    for name in (a, b):
        if name not in protocols:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"no finished run of method {name!r} in this scope.{hint} Known: {', '.join(known)}.")
    protocol = _protocol(a, b, protocols, choice)
    if protocol == VR:
        if choice.given():
            raise ConfigError(f"{', '.join(_OPTION[k] for k in choice.given())}: for prompt-learning protocols; "
                              f"{a} and {b} are compared on the leaderboards (vr)")
        rule = rule or "best_test"
        if rule not in RULES:
            raise ConfigError(f"unknown selection rule {rule!r}: choose from {', '.join(RULES)}")
        units: Units = {a: defaultdict(lambda: defaultdict(list)), b: defaultdict(lambda: defaultdict(list))}
        for method, run_backbone, dataset, run_rule, _groups, seed, acc in scores:
            if method in units and run_rule == rule and backbone in (None, run_backbone):
                units[method][(run_backbone, dataset)][seed].append(acc)
        selection = Selection(VR, rule)
    else:
        if rule not in (None, PROMPT_RULE):
            raise ConfigError(f"prompt-learning runs are compared under the {PROMPT_RULE} rule (the papers' last "
                              f"epoch), not {rule!r}: leave out --rule")
        if protocol == "base2novel" and choice.subsample == HM:
            units, setting = _hm_units(a, b, prompt_runs, backbone, choice)
        else:
            units, setting = _prompt_units(a, b, protocol, prompt_runs, backbone, choice)
        selection = Selection(protocol, PROMPT_RULE, setting)
    if backbone is not None and not (units[a] or units[b]):
        raise ConfigError(f"no run of {a} or {b} on backbone {backbone!r} under the {selection.rule} rule")
    pairs, left_out = _pair(units[a], units[b])
    if not pairs:
        raise ResultsError(f"{a} and {b} share no (backbone, dataset, seed) under the {selection.rule} rule: "
                           "nothing to pair" + ("" if backbone else " (try --backbone)"))
    return pairs, left_out, selection


def _protocol(a: str, b: str, protocols: dict[str, set[str]], choice: Choice) -> str:
    """The protocol to compare in: the chosen one, or the only one both methods have runs of."""
    order = (VR, *PROMPT_PROTOCOLS)
    if choice.protocol is not None:
        for name in (a, b):
            if choice.protocol not in protocols[name]:
                raise ConfigError(f"{name} has no finished {choice.protocol} run; it has "
                                  f"{', '.join(p for p in order if p in protocols[name])}")
        return choice.protocol
    shared = [p for p in order if p in protocols[a] & protocols[b]]
    if len(shared) == 1:
        return shared[0]
    if not shared:
        raise ConfigError(f"{a} and {b} share no protocol: {a} has {', '.join(p for p in order if p in protocols[a])}"
                          f"; {b} has {', '.join(p for p in order if p in protocols[b])}")
    raise ConfigError(f"{a} and {b} both have runs of {', '.join(shared)}: choose one with --protocol")


def _setting_text(setting: dict[str, object]) -> str:
    return " ".join(f"{axis}={'—' if value is None else value}" for axis, value in setting.items())


def _prompt_units(a: str, b: str, protocol: str, runs: list[PromptRun], backbone: str | None,
                  choice: Choice) -> tuple[Units, dict[str, object]]:
    """The two methods' runs of ``protocol`` in the one setting both have (after the user's choice), by
    (backbone, dataset) and seed. Transfer runs are assigned to their source as the report's tables do."""
    axes = SETTING_AXES[protocol]
    if protocol in TRANSFER_PROTOCOLS:
        placed = transfer_runs(protocol, [r for r in runs if r.protocol in TRANSFER_PROTOCOLS])
    else:
        placed = [(None, r) for r in runs if r.protocol == protocol]
    wanted = {**choice.given()}
    if "subsample" in wanted:
        wanted["subsample"] = SUBSAMPLE_ALIASES.get(str(wanted["subsample"]), wanted["subsample"])

    def setting(source: str | None, run: PromptRun) -> tuple[object, ...]:
        values = {"shots": _ANY if run.base_method in TRAINING_FREE else run.shots, "subsample": run.subsample,
                  "source_dataset": source}
        return tuple(values[axis] for axis in axes)

    def fits(value: tuple[object, ...], target: tuple[object, ...]) -> bool:
        return all(v == t or _ANY in (v, t) for v, t in zip(value, target, strict=True))

    present: dict[str, set[tuple[object, ...]]] = {a: set(), b: set()}
    chosen_runs: list[tuple[tuple[object, ...], PromptRun]] = []
    for source, run in placed:
        if run.method not in present or backbone not in (None, run.backbone):
            continue
        key = setting(source, run)
        if all(wanted.get(axis, value) == value or value == _ANY for axis, value in zip(axes, key, strict=True)):
            present[run.method].add(key)
            chosen_runs.append((key, run))
    extra = [axis for axis in wanted if axis not in axes]
    if extra:
        raise ConfigError(f"{', '.join(_OPTION[x] for x in extra)}: not a setting of {protocol} runs (its settings: "
                          f"{', '.join(_OPTION[x] for x in axes)})")
    shared = sorted({tuple(t if v == _ANY else v for v, t in zip(x, y, strict=True))
                     for x in present[a] for y in present[b] if fits(x, y)}, key=str)
    if len(shared) != 1:
        def listing(keys: set[tuple[object, ...]]) -> str:
            return "; ".join(_setting_text(dict(zip(axes, k, strict=True))) for k in sorted(keys, key=str)) or "none"

        options = "/".join(_OPTION[x] for x in axes)
        if not shared:
            raise ConfigError(f"{a} and {b} share no {protocol} setting"
                              + (f" with {_setting_text(wanted)}" if wanted else "")
                              + f": {a} has {listing(present[a])}; {b} has {listing(present[b])} "
                              f"(choose with {options})")
        raise ConfigError(f"{a} and {b} share several {protocol} settings ({listing(set(shared))}): choose one with "
                          f"{options}")
    target = shared[0]
    units: Units = {a: defaultdict(lambda: defaultdict(list)), b: defaultdict(lambda: defaultdict(list))}
    for key, run in chosen_runs:
        if fits(key, target):
            source = dict(zip(axes, key, strict=True)).get("source_dataset")
            dataset = f"{run.dataset} {SOURCE_SUFFIX}" if run.dataset == source else run.dataset
            units[run.method][(run.backbone, dataset)][run.seed].append(run.acc)
    return units, dict(zip(axes, target, strict=True))


def _hm_units(a: str, b: str, runs: list[PromptRun], backbone: str | None,
              choice: Choice) -> tuple[Units, dict[str, object]]:
    """Base-to-novel per seed: the HM of the seed's base and novel accuracies (the seeds that have both)."""
    base, setting = _prompt_units(a, b, "base2novel", runs, backbone, replace(choice, subsample="base"))
    shots = setting["shots"] if setting["shots"] != _ANY else choice.shots
    new, _ = _prompt_units(a, b, "base2novel", runs, backbone, replace(choice, subsample="new", shots=shots))
    units: Units = {}
    for method in (a, b):
        units[method] = defaultdict(lambda: defaultdict(list))
        for unit, seeds in base[method].items():
            for seed, accs in seeds.items():
                novel = new[method].get(unit, {}).get(seed)
                if novel:
                    units[method][unit][seed].append(harmonic_mean(float(np.mean(accs)), float(np.mean(novel))))
    return units, {**setting, "subsample": HM}


def _pair(units_a: dict, units_b: dict) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, int]]:
    """Pair A's and B's scores by (backbone, dataset, seed); runs repeating a seed in one unit are averaged."""
    units = set(units_a) & set(units_b)
    several = len({u[0] for u in units}) > 1
    pairs, left_out = {}, {"a": 0, "b": 0}
    for key in sorted(set(units_a) | set(units_b)):
        seeds_a, seeds_b = units_a.get(key, {}), units_b.get(key, {})
        shared = sorted(set(seeds_a) & set(seeds_b), key=lambda s: (s is None, s))
        left_out["a"] += len(seeds_a) - len(shared)
        left_out["b"] += len(seeds_b) - len(shared)
        if shared:
            name = f"{key[1]} · {key[0]}" if several else key[1]
            pairs[name] = (np.array([np.mean(seeds_a[s]) for s in shared]),
                           np.array([np.mean(seeds_b[s]) for s in shared]))
    return dict(sorted(pairs.items())), left_out


def compare_runs(db_path: Path, a: str, b: str, rule: str | None = None, backbone: str | None = None,
                 run_ids: set[str] | None = None, choice: Choice = Choice()) -> tuple[Comparison, Selection]:
    """A against B, and what was compared (protocol, rule, prompt-learning setting)."""
    pairs, left_out, selection = paired_scores(db_path, a, b, rule, backbone, run_ids, choice)
    aside = frozenset(name for name in pairs if SOURCE_SUFFIX in name)
    return compare_scores(pairs, unpaired=left_out, aside=aside), selection


def compare_methods(db_path: Path, a: str, b: str, rule: str | None, backbone: str | None = None,
                    run_ids: set[str] | None = None, choice: Choice = Choice()) -> Comparison:
    return compare_runs(db_path, a, b, rule, backbone, run_ids, choice)[0]


def as_json(result: Comparison, a: str, b: str, selection: Selection, backbone: str | None) -> str:
    return json.dumps({"a": a, "b": b, "rule": selection.rule, "backbone": backbone, "protocol": selection.protocol,
                       "setting": selection.setting, **result.as_json()}, indent=2)


def _num(value: float | None, digits: int = 2, signed: bool = True) -> str:
    if value is None:
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def print_table(result: Comparison, a: str, b: str, selection: Selection, console: Console) -> None:
    """Per dataset, then across datasets, then what was left out."""
    from rich.markup import escape
    from rich.table import Table

    rule = selection.rule
    where = "" if selection.protocol == VR else f", {selection.protocol} {_setting_text(selection.setting)}"
    table = Table(title=escape(f"{a} − {b}, test accuracy points ({rule} rule{where})"), title_justify="left")
    for column in ("dataset", "n", "mean diff", "95 % CI", "P(A > B)", "outcome"):
        table.add_column(column, justify="left" if column in ("dataset", "outcome") else "right")
    for d in result.aside:
        interval = "n=1: no interval" if d.ci_low is None else f"[{_num(d.ci_low)}, {_num(d.ci_high)}]"
        table.add_row(escape(d.name), str(d.n), _num(d.mean_diff), interval, f"{d.prob_improvement:.2f}",
                      "(not across datasets)")
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
