"""Prompt-learning tables in the papers' layouts: base-to-novel, few-shot, cross-dataset, domain generalization.

The CLIP prompt-learning papers test the prompts of the last epoch, average each cell over seeds, take the
base-to-novel HM of the seed-averaged base and novel accuracies, and average datasets plainly (docs/methods.md (CLIP)
§2.5-2.7, §4). The numbers here follow the same recipe, so the published values can sit next to ours. A
published value is shown only for like with like: the paper's backbone, its 16 shots (base-to-novel, transfer),
its ImageNet source (transfer) and, for an average, exactly the datasets the paper averaged.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import duckdb

from vrbench.report.model import PROMPT_PROTOCOLS, Cell, _filter, _group_exprs
from vrbench.report.references import (
    BACKBONE_ALIASES,
    DATASET_ALIASES,
    PROTOCOL_TABLES,
    Reference,
    RefSource,
    datasets_of,
    match,
    published_backbones,
    ref_dataset,
)

PROMPT_RULE = "final"
RULE_CAPTION = ("final: test accuracy after the last epoch, as the prompt-learning papers (no selection on the "
                "test set); ours is the mean over n seeds (± sample std), as the papers average 3 seeds.")

TITLES: dict[str, str] = {
    "base2novel": "Base-to-novel generalization",
    "fewshot": "Few-shot classification",
    "cross_dataset": "Cross-dataset transfer",
    "domain_generalization": "Domain generalization",
}
# The paper's printed average row of each protocol's table.
AVERAGE_ROWS: dict[str, str] = {
    "base2novel": "avg_11_datasets", "fewshot": "avg_11_datasets", "cross_dataset": "avg_10_targets",
    "domain_generalization": "avg_4_targets",
}
PAPER_SOURCE = "imagenet"  # cross-dataset and DG prompts are trained on ImageNet (docs/methods.md CLIP §2.6)
PAPER_SHOTS = 16  # base-to-novel and the transfer protocols train on 16 shots
TRAINING_FREE = ("zeroshot", "zeroshot_ensemble")  # their accuracy does not depend on shots
# The papers' orders, so our tables read like theirs; anything else follows alphabetically.
DATASET_ORDER: tuple[str, ...] = (
    "imagenet", "caltech101", "oxford_pets", "stanford_cars", "flowers102", "food101", "fgvc_aircraft", "sun397",
    "dtd", "eurosat", "ucf101", "imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r",
)
METHOD_ORDER: tuple[str, ...] = (
    "zeroshot", "zeroshot_ensemble", "linear_probe_clip", "coop", "cocoop", "ivlp", "maple", "promptsrc",
)
B2N_COLUMNS: tuple[str, str, str] = ("Base", "Novel", "HM")
B2N_METRICS: dict[str, str] = {"Base": "base_acc", "Novel": "novel_acc", "HM": "hm"}
AVERAGE = "Average"

_OUR_NAME = {paper: ours for ours, paper in DATASET_ALIASES.items()}


@dataclass(frozen=True)
class PromptRun:
    """One done prompt-learning run as the tables need it (``base_method`` is config.method, ``method`` the row
    name, which is a suite label when one is set)."""

    method: str
    base_method: str | None
    backbone: str
    groups: tuple[str, ...]
    protocol: str
    dataset: str
    shots: int | None
    subsample: str | None
    source_dataset: str | None
    acc: float
    seed: int | None = None


@dataclass(frozen=True)
class Value:
    """One number of a prompt table: a seed mean (``cell`` holds its n, std, min, max) or a number derived from
    seed means (an HM or an average; ``over`` = (k, K) when it averages only k of the K datasets it should)."""

    mean: float
    cell: Cell | None = None
    ref: Reference | None = None
    over: tuple[int, int] | None = None
    # What the "not significantly worse than the best" marks test: per seed, the seed's accuracy (repeats
    # averaged), HM or average over datasets (vrbench.report.significance.annotate_prompt); None = not tested.
    seeds: dict[int | None, float] | None = field(default=None, compare=False, repr=False)
    not_worse: bool | None = None

    @property
    def diff(self) -> float | None:
        """Ours minus the paper's value, in accuracy points."""
        return None if self.ref is None else self.mean - self.ref.value


@dataclass
class PromptRow:
    """A table row: one method (· backbone · groups) and, in per-dataset layouts, one dataset or the average."""

    method: str
    backbone: str
    groups: tuple[str, ...]
    name: str = ""  # the dataset, or AVERAGE; empty when a row is a whole method (transfer tables)
    setting: str = ""  # e.g. "4-shot", when a table mixes settings
    values: dict[str, Value] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return " · ".join(part for part in (self.method, self.backbone, self.setting) if part)

    @property
    def is_average(self) -> bool:
        return self.name == AVERAGE


@dataclass
class PromptTable:
    """One table of a section: its column names (Base/Novel/HM, shots, or source/targets/Average), its rows and
    the caveats that explain any missing published value."""

    caption: str
    name_header: str | None  # "Dataset" when rows are per dataset; None when a row is a whole method
    columns: list[str]
    rows: list[PromptRow]
    notes: list[str] = field(default_factory=list)

    @property
    def has_references(self) -> bool:
        return any(v.ref is not None for r in self.rows for v in r.values.values())


@dataclass
class PromptSection:
    """One protocol's tables (transfer protocols get one table per source dataset)."""

    protocol: str
    title: str
    tables: list[PromptTable]

    @property
    def references(self) -> list[Reference]:
        return [v.ref for t in self.tables for r in t.rows for v in r.values.values() if v.ref is not None]


def load_prompt_runs(con: duckdb.DuckDBPyConnection, run_ids: set[str] | None = None,
                     group_by: tuple[str, ...] = ()) -> list[PromptRun]:
    """Done prompt-protocol runs with a final accuracy (the papers' number), with the report's group values."""
    groups = _group_exprs(con, group_by)
    where, params = _filter(run_ids, "r.run_id")
    group_sql = "".join(f", {g}" for g in groups)
    sql = f"""SELECT r.method, json_extract_string(r.config, '$.method'), r.backbone, r.protocol, r.dataset,
                     r.shots, r.subsample, r.source_dataset, r.final_acc, r.seed{group_sql}
              FROM runs r LEFT JOIN environments e ON e.run_id = r.run_id LEFT JOIN provenance p ON p.run_id = r.run_id
              WHERE r.status = 'done' AND r.final_acc IS NOT NULL AND list_contains(?, r.protocol) AND {where}
              ORDER BY r.run_id"""
    out = []
    for row in con.execute(sql, [list(PROMPT_PROTOCOLS), *params]).fetchall():
        method, base, backbone, protocol, dataset, shots, subsample, source, acc, seed = row[:10]
        values = tuple("—" if v is None else str(v) for v in row[10:])
        out.append(PromptRun(method, base, backbone, values, protocol, dataset, shots, subsample, source, acc, seed))
    return out


# ------------------------------------------------------------------------------------------------ helpers


def harmonic_mean(base: float, novel: float) -> float:
    """HM = 2BN/(B+N) of two accuracies (0 when both are 0)."""
    return 0.0 if base + novel == 0 else 2 * base * novel / (base + novel)


Scores = list[tuple[int | None, float]]  # (seed, accuracy) of the runs of one cell


def _cell(scores: Scores) -> Cell:
    """Seed statistics; the sample std (ddof=1) as the VR tables, None for a single run."""
    accs = [acc for _, acc in scores]
    return Cell(len(accs), statistics.fmean(accs), statistics.stdev(accs) if len(accs) > 1 else None,
                min(accs), max(accs))


def _seed_value(scores: Scores) -> Value:
    """A cell's Value: its seed statistics and, for the marks, its accuracy per seed (repeats averaged)."""
    cell = _cell(scores)
    per_seed: dict[int | None, list[float]] = defaultdict(list)
    for seed, acc in scores:
        per_seed[seed].append(acc)
    return Value(cell.mean, cell, seeds={seed: statistics.fmean(accs) for seed, accs in per_seed.items()})


def seed_hm(base: dict[int | None, float], novel: dict[int | None, float]) -> dict[int | None, float]:
    """The HM of each seed that has both a base and a novel run: what the marks test for an HM."""
    return {seed: harmonic_mean(base[seed], novel[seed]) for seed in base if seed in novel}


def seed_average(parts: Iterable[dict[int | None, float] | None]) -> dict[int | None, float] | None:
    """Per seed, the plain mean over datasets, for the seeds every dataset has (None: some part is untested)."""
    parts = list(parts)
    if not parts or any(p is None for p in parts):
        return None
    shared = set.intersection(*(set(p) for p in parts))
    return {seed: statistics.fmean(p[seed] for p in parts) for seed in shared}


def _dataset_key(name: str) -> tuple[int, str]:
    paper = ref_dataset(name)
    return (DATASET_ORDER.index(paper), name) if paper in DATASET_ORDER else (len(DATASET_ORDER), name)


def _our_name(paper_dataset: str) -> str:
    return _OUR_NAME.get(paper_dataset, paper_dataset)


def _shots_text(shots: int | None) -> str:
    return "all data" if shots is None else f"{shots}-shot"


ZERO_SHOT_COLUMN = "zero-shot"  # few-shot tables: training-free methods use no shots at all


def _like_paper_shots(runs: Iterable[PromptRun]) -> bool:
    return all(r.base_method in TRAINING_FREE or r.shots == PAPER_SHOTS for r in runs)


@dataclass
class _Context:
    """What every table of one report shares: the paper choice and the suite's reference rows."""

    paper: str | None
    reference_rows: dict[str, tuple[RefSource, ...]] | None

    def ref(self, protocol: str, method: str, backbone: str, dataset: str, metric: str) -> Reference | None:
        return match(method, backbone, dataset, paper=self.paper, metric=metric, rows=self.reference_rows,
                     tables=PROTOCOL_TABLES[protocol])

    def published(self, protocol: str, method: str, metric: str) -> set[str]:
        """The backbones (CSV names) the paper reports ``method`` with in this protocol's tables."""
        return published_backbones(method, paper=self.paper, metric=metric, rows=self.reference_rows,
                                   tables=PROTOCOL_TABLES[protocol])

    def paper_backbone(self, protocol: str, method: str, backbone: str, metric: str) -> bool:
        """Whether the paper reports ``method`` with our ``backbone``: only then do other settings need a note."""
        return BACKBONE_ALIASES.get(backbone, backbone) in self.published(protocol, method, metric)

    def backbone_note(self, protocol: str, rows: Iterable[PromptRow], metric: str) -> list[str]:
        """Say why rows of a backbone the paper did not use show no published value."""
        methods: dict[tuple[str, tuple[str, ...]], list[str]] = defaultdict(list)
        for method, backbone in sorted({(r.method, r.backbone) for r in rows}):
            published = self.published(protocol, method, metric)
            if published and not self.paper_backbone(protocol, method, backbone, metric):
                methods[(backbone, tuple(sorted(published)))].append(method)
        return [f"Rows on {backbone} ({', '.join(names)}): published values exist only for {', '.join(published)}, "
                "a different model, so none is shown (paper —)." for (backbone, published), names in methods.items()]


@dataclass(frozen=True)
class _Coverage:
    """Which datasets an average covers: ``over`` = (k, K) when partial, ``missing`` names the K - k others,
    ``comparable`` says whether the published average (if any) is over exactly the same datasets."""

    over: tuple[int, int] | None
    missing: list[str]
    comparable: bool
    complete: bool = True  # covers every dataset of its table: only then is it tested against the other rows


def _coverage(covered: Iterable[str], table_datasets: Iterable[str], avg_ref: Reference | None,
              exclude: str | None = None) -> _Coverage:
    """The datasets an average should cover are the table's plus, for a row with a published average, the
    paper's (``exclude``: the transfer source, which the paper's average leaves out)."""
    covered = set(covered)
    universe = set(table_datasets) | covered
    expected: set[str] = set()
    if avg_ref is not None:
        expected = datasets_of(avg_ref) - ({ref_dataset(exclude)} if exclude else set())
        universe |= {_our_name(d) for d in expected}
    missing = sorted(universe - covered, key=_dataset_key)
    over = (len(covered), len(universe)) if missing else None
    comparable = avg_ref is not None and {ref_dataset(d) for d in covered} == expected
    return _Coverage(over, missing, comparable, covered >= set(table_datasets))


def _average_value(values: dict[str, Value], coverage: _Coverage, avg_ref: Reference | None) -> Value:
    """The plain mean of ``values`` (one per dataset); only an average over every dataset of its table carries
    per-seed averages for the marks: one lacking a dataset is not comparable with the others."""
    seeds = seed_average(v.seeds for v in values.values()) if coverage.complete else None
    return Value(statistics.fmean(v.mean for v in values.values()), ref=avg_ref if coverage.comparable else None,
                 over=coverage.over, seeds=seeds)


def _partial_note(label: str, what: str, coverage: _Coverage, avg_ref: Reference | None) -> str | None:
    """A note for an average that lacks datasets or cannot be compared with the published one (else None)."""
    withheld = avg_ref is not None and not coverage.comparable
    if not coverage.missing and not withheld:
        return None
    text = f"{label}: {what} lacks {', '.join(coverage.missing)}" if coverage.missing else f"{label}: {what}"
    if withheld:
        text += f"; not compared with the paper's {avg_ref.dataset}, an average over a different set of datasets"
    return text + "."


RowKey = tuple[int, str, str, tuple[str, ...]]  # (method's place in the papers' order, name, backbone, groups)


def _row_key(run: PromptRun) -> RowKey:
    """Rows sort in the papers' method order (by config.method, so labelled variants sit beside their method)."""
    position = METHOD_ORDER.index(run.base_method) if run.base_method in METHOD_ORDER else len(METHOD_ORDER)
    return position, run.method, run.backbone, run.groups


def _mixed_shots(keys: Iterable[tuple[RowKey, int | None]]) -> set[RowKey]:
    """Rows (method · backbone · groups) that exist with several shot counts: their labels must name the shots."""
    seen: dict[RowKey, set[int | None]] = defaultdict(set)
    for key, shots in keys:
        seen[key].add(shots)
    return {key for key, shots in seen.items() if len(shots) > 1}


def _setting_label(key: RowKey, shots: int | None, mixed: set[RowKey]) -> str:
    return _shots_text(shots) if key in mixed else ""


# ------------------------------------------------------------------------------------------------ base-to-novel


def _base2novel(runs: list[PromptRun], ctx: _Context) -> PromptTable:
    protocol = "base2novel"
    accs: dict[tuple[RowKey, int | None], dict[str, dict[str, Scores]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list)))
    rows_runs: dict[tuple[RowKey, int | None], list[PromptRun]] = defaultdict(list)
    skipped = 0
    for run in runs:
        if run.subsample not in ("base", "new"):
            skipped += 1
            continue
        key = (_row_key(run), run.shots)
        accs[key][run.dataset][run.subsample].append((run.seed, run.acc))
        rows_runs[key].append(run)
    table_datasets = sorted({d for per in accs.values() for d in per}, key=_dataset_key)
    mixed = _mixed_shots(accs)
    rows: list[PromptRow] = []
    notes: list[str] = []
    for key in sorted(accs, key=lambda k: (k[0], (k[1] is None, k[1] or 0))):
        (_, method, backbone, groups), shots = key
        like = _like_paper_shots(rows_runs[key])

        def ref(dataset: str, column: str, method: str = method, backbone: str = backbone,
                like: bool = like) -> Reference | None:
            return ctx.ref(protocol, method, backbone, dataset, B2N_METRICS[column]) if like else None

        setting = _setting_label(key[0], shots, mixed)
        both: dict[str, tuple[Value, Value]] = {}
        for dataset in sorted(accs[key], key=_dataset_key):
            parts = accs[key][dataset]
            row = PromptRow(method, backbone, groups, dataset, setting)
            for column, subsample in (("Base", "base"), ("Novel", "new")):
                if parts.get(subsample):
                    row.values[column] = replace(_seed_value(parts[subsample]), ref=ref(dataset, column))
            if "Base" in row.values and "Novel" in row.values:
                base, novel = row.values["Base"], row.values["Novel"]
                both[dataset] = (base, novel)
                row.values["HM"] = Value(harmonic_mean(base.mean, novel.mean), ref=ref(dataset, "HM"),
                                         seeds=seed_hm(base.seeds or {}, novel.seeds or {}))
            rows.append(row)
        average = PromptRow(method, backbone, groups, AVERAGE, setting)
        if both:
            avg_refs = {c: ref(AVERAGE_ROWS[protocol], c) for c in B2N_COLUMNS}
            coverage = _coverage(both, table_datasets, avg_refs["HM"])
            for column, index in (("Base", 0), ("Novel", 1)):
                average.values[column] = _average_value({d: bn[index] for d, bn in both.items()}, coverage,
                                                        avg_refs[column])
            base, novel = average.values["Base"], average.values["Novel"]
            hm_seeds = None if base.seeds is None or novel.seeds is None else seed_hm(base.seeds, novel.seeds)
            average.values["HM"] = Value(harmonic_mean(base.mean, novel.mean),
                                         ref=avg_refs["HM"] if coverage.comparable else None, over=coverage.over,
                                         seeds=hm_seeds)
            note = _partial_note(average.label, "the average (over datasets with both base and novel runs)",
                                 coverage, avg_refs["HM"])
            notes += [note] if note else []
            rows.append(average)
        if not like and ctx.paper_backbone(protocol, method, backbone, "base_acc"):
            notes.append(f"{average.label}: trained on {_shots_text(shots)}, the paper on {PAPER_SHOTS} shots: "
                         "published values not shown.")
    notes += ctx.backbone_note(protocol, rows, "base_acc")
    if skipped:
        notes.append(f"{skipped} base2novel run(s) with a subsample other than base or new are not in this table.")
    caption = (f"{RULE_CAPTION} Base = mean over seeds of the runs tested on the base classes, Novel = on the novel "
               "classes (prompts trained on base, rebuilt with the novel names); HM = 2·Base·Novel/(Base+Novel) of "
               "those two means. Average = plain mean of the per-dataset Base and Novel over the datasets that have "
               "both, and the HM of those averages.")
    return PromptTable(caption, "Dataset", list(B2N_COLUMNS), rows, notes)


# ------------------------------------------------------------------------------------------------ few-shot


def _column(shots: int | None) -> str:
    return ZERO_SHOT_COLUMN if shots == 0 else _shots_text(shots)


def _fewshot(runs: list[PromptRun], ctx: _Context) -> PromptTable:
    protocol = "fewshot"
    accs: dict[RowKey, dict[str, dict[int | None, Scores]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list)))
    for run in runs:
        shots = 0 if run.base_method in TRAINING_FREE else run.shots  # 0: the zero-shot column
        accs[_row_key(run)][run.dataset][shots].append((run.seed, run.acc))
    shots_present = sorted({s for per in accs.values() for d in per.values() for s in d},
                           key=lambda s: (s is None, s or 0))
    columns = [_column(s) for s in shots_present]
    table_datasets = sorted({d for per in accs.values() for d in per}, key=_dataset_key)
    rows: list[PromptRow] = []
    notes: list[str] = []
    for key in sorted(accs):
        _, method, backbone, groups = key

        def ref(dataset: str, shots: int | None, method: str = method, backbone: str = backbone) -> Reference | None:
            return None if not shots else ctx.ref(protocol, method, backbone, dataset, f"top1_acc_{shots}shot")

        by_dataset: dict[str, PromptRow] = {}
        for dataset in sorted(accs[key], key=_dataset_key):
            row = by_dataset[dataset] = PromptRow(method, backbone, groups, dataset)
            for shots, values in sorted(accs[key][dataset].items(), key=lambda sv: (sv[0] is None, sv[0] or 0)):
                row.values[_column(shots)] = replace(_seed_value(values), ref=ref(dataset, shots))
        rows += by_dataset.values()
        average = PromptRow(method, backbone, groups, AVERAGE)
        for shots in shots_present:
            column = _column(shots)
            means = {d: row.values[column] for d, row in by_dataset.items() if column in row.values}
            if not means:
                continue
            avg_ref = ref(AVERAGE_ROWS[protocol], shots)
            coverage = _coverage(means, table_datasets, avg_ref)
            average.values[column] = _average_value(means, coverage, avg_ref)
            note = _partial_note(average.label, f"the {column} average", coverage, avg_ref)
            notes += [note] if note else []
        rows.append(average)
    notes += ctx.backbone_note(protocol, rows, "top1_acc_16shot")
    caption = (f"{RULE_CAPTION} Columns: training images per class (all classes, tested on the full test split; "
               f"{ZERO_SHOT_COLUMN}: methods that learn nothing). Average = plain mean over the datasets that have "
               "that column.")
    return PromptTable(caption, "Dataset", columns, rows, notes)


# ------------------------------------------------------------------------------------------------ transfer


TRANSFER_PROTOCOLS = ("cross_dataset", "domain_generalization")


def transfer_runs(protocol: str, runs: list[PromptRun]) -> list[tuple[str, PromptRun]]:
    """The (source dataset, run) pairs of one transfer table, out of the runs of both transfer protocols.

    Cross-dataset and DG test the same ImageNet-trained prompts, so one training run (whichever protocol its
    config names) is the source column of both tables. An eval run names its training run's dataset; a training
    run tests on its own source. A zero-shot method has neither (each of its jobs tests CLIP on its own dataset):
    its run on a dataset the other methods train on is that source's column, its other runs are targets (of
    ImageNet when there are several sources). A source run goes to each table where its row has targets, or, when
    it has none yet, to the table of its own protocol.
    """
    sources = {r.source_dataset or r.dataset for r in runs if r.base_method not in TRAINING_FREE} or {PAPER_SOURCE}

    def source(run: PromptRun) -> str:
        if run.source_dataset:
            return run.source_dataset
        if run.base_method not in TRAINING_FREE or run.dataset in sources:
            return run.dataset
        return PAPER_SOURCE if PAPER_SOURCE in sources else min(sources, key=_dataset_key)

    def row(run: PromptRun) -> tuple[str, RowKey, int | None]:
        return source(run), _row_key(run), run.shots

    targets_in: dict[tuple[str, RowKey, int | None], set[str]] = defaultdict(set)
    for run in runs:
        if run.dataset != source(run):
            targets_in[row(run)].add(run.protocol)
    out = []
    for run in runs:
        if run.dataset != source(run):
            keep = run.protocol == protocol
        else:
            keep = protocol in targets_in[row(run)] or (not targets_in[row(run)] and run.protocol == protocol)
        if keep:
            out.append((source(run), run))
    return out


def _transfer(protocol: str, runs: list[PromptRun], ctx: _Context) -> list[PromptTable]:
    """Cross-dataset and DG: a row per method and source, the source's own accuracy, each target, the average
    over the targets (never the source)."""
    accs: dict[str, dict[tuple[RowKey, int | None], dict[str, Scores]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list)))
    rows_runs: dict[tuple[str, RowKey, int | None], list[PromptRun]] = defaultdict(list)
    for src, run in transfer_runs(protocol, runs):
        accs[src][(_row_key(run), run.shots)][run.dataset].append((run.seed, run.acc))
        rows_runs[(src, _row_key(run), run.shots)].append(run)
    mixed = _mixed_shots(key for per in accs.values() for key in per)
    tables = []
    for src in sorted(accs, key=lambda s: (s != PAPER_SOURCE, _dataset_key(s))):
        per_row = accs[src]
        targets = sorted({d for per in per_row.values() for d in per if d != src}, key=_dataset_key)
        source_column = f"{src} (source)"
        columns = [source_column, *targets, AVERAGE]
        rows: list[PromptRow] = []
        notes: list[str] = []
        for key in sorted(per_row, key=lambda k: (k[0], (k[1] is None, k[1] or 0))):
            (_, method, backbone, groups), shots = key
            like = src == PAPER_SOURCE and _like_paper_shots(rows_runs[(src, *key)])

            def ref(dataset: str, method: str = method, backbone: str = backbone,
                    like: bool = like) -> Reference | None:
                return ctx.ref(protocol, method, backbone, dataset, "top1_acc") if like else None

            row = PromptRow(method, backbone, groups, setting=_setting_label(key[0], shots, mixed))
            for dataset, values in per_row[key].items():
                row.values[source_column if dataset == src else dataset] = replace(_seed_value(values),
                                                                                   ref=ref(dataset))
            means = {d: v for d, v in row.values.items() if d != source_column}
            if means:
                avg_ref = ref(AVERAGE_ROWS[protocol])
                coverage = _coverage(means, targets, avg_ref, exclude=src)
                row.values[AVERAGE] = _average_value(means, coverage, avg_ref)
                note = _partial_note(row.label, "the target average", coverage, avg_ref)
                notes += [note] if note else []
            if not ctx.paper_backbone(protocol, method, backbone, "top1_acc"):
                pass  # the backbone note says why
            elif src != PAPER_SOURCE:
                notes.append(f"{row.label}: prompts trained on {src}; the paper's are trained on {PAPER_SOURCE}, "
                             "so no published value is shown.")
            elif not like:
                notes.append(f"{row.label}: trained on {_shots_text(shots)}, the paper on {PAPER_SHOTS} shots: "
                             "published values not shown.")
            rows.append(row)
        notes += ctx.backbone_note(protocol, rows, "top1_acc")
        caption = (f"{RULE_CAPTION} Prompts trained on {src} (the source column: tested on its own test split) "
                   "and tested unchanged on each target, rebuilt with the target's class names. Average = plain "
                   "mean over the targets only, not the source.")
        tables.append(PromptTable(caption, None, columns, rows, notes))
    return tables


_BUILDERS: dict[str, Callable[[list[PromptRun], _Context], list[PromptTable]]] = {
    "base2novel": lambda runs, ctx: [_base2novel(runs, ctx)],
    "fewshot": lambda runs, ctx: [_fewshot(runs, ctx)],
    "cross_dataset": lambda runs, ctx: _transfer("cross_dataset", runs, ctx),
    "domain_generalization": lambda runs, ctx: _transfer("domain_generalization", runs, ctx),
}


def build_prompt_sections(runs: list[PromptRun], paper: str | None,
                          reference_rows: dict[str, tuple[RefSource, ...]] | None = None) -> list[PromptSection]:
    """One section per prompt-learning protocol present, in the papers' order of protocols."""
    ctx = _Context(paper, reference_rows)
    sections = []
    for protocol in PROMPT_PROTOCOLS:
        pool = TRANSFER_PROTOCOLS if protocol in TRANSFER_PROTOCOLS else (protocol,)
        selected = [r for r in runs if r.protocol in pool]
        tables = _BUILDERS[protocol](selected, ctx) if selected else []
        if tables:
            sections.append(PromptSection(protocol, TITLES[protocol], tables))
    return sections
