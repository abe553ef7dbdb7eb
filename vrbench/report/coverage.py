"""Which published cells the paper suites reproduce, and why the others have no job (`vrbench ls references
--coverage`).

A published cell (one value of a reference CSV) is covered when some job of a suite would be compared with it in
a report: the same lookup the reports use (`references.cell_keys`: the suite's `reference.rows`, then the
built-in aliases, the backbone and dataset aliases, a prompt protocol's tables), plus the reports' like-with-like
rules for prompt learning (16 shots, ImageNet as the transfer source). A printed average is covered when every cell
it averages is (the per-dataset cells it is the mean of, or for SMM Table 13 the 4 + 7 datasets its headers name).
Every other cell needs a documented reason in EXCLUSIONS; tests/test_coverage.py fails on any cell without one,
so a suite edit that drops a published cell cannot go unnoticed.

Must not import torch: it runs under `vrbench ls`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from vrbench.report.references import (
    PROTOCOL_TABLES,
    CellKey,
    Reference,
    cell_key,
    cell_keys,
    datasets_of,
    load_references,
)

# Papers whose CSV holds no value yet: the whole paper is listed with this reason.
NO_PUBLISHED_VALUES: dict[str, str] = {
    "blm_neurips24": "BLM: no published values available (reference CSV is header-only)",
    "ilm_vp_cvpr23_clip": "ILM-VP on CLIP: no published values available (reference CSV is header-only)",
}



@dataclass(frozen=True)
class Exclusion:
    """A published row (paper, table, method) that no suite reproduces, and why."""

    paper: str
    table: str
    method: str
    reason: str


# Published rows deliberately without a job. Each needs a reason a user can check. Empty since issue 24 (ProDA and
# PromptSRC's ablation steps have jobs): every published value has one, except the papers in NO_PUBLISHED_VALUES.
EXCLUSIONS: tuple[Exclusion, ...] = ()

# Printed averages whose datasets are not rows of their table: the columns the paper's header names.
AVERAGE_DATASETS: dict[tuple[str, str], tuple[str, ...]] = {
    ("smm_icml24", "avg_4_datasets_32x32"): ("cifar10", "cifar100", "svhn", "gtsrb"),
    ("smm_icml24", "avg_7_datasets_128x128"): ("flowers102", "dtd", "ucf101", "food101", "sun397", "eurosat",
                                               "oxford_pets"),
}
TRANSFER_SOURCE = "imagenet"  # the papers' transfer source; their averages leave it out
PAPER_SHOTS = 16


@dataclass
class TableCoverage:
    """One published table: its cells, those a suite job reproduces, and the others with their reason."""

    paper: str
    table: str
    cells: list[Reference]
    covered: list[Reference] = field(default_factory=list)
    uncovered: list[tuple[Reference, str]] = field(default_factory=list)

    @property
    def unexplained(self) -> list[Reference]:
        return [ref for ref, reason in self.uncovered if reason == UNEXPLAINED]


UNEXPLAINED = "no job in the suites"


def _prompt_keys(config: dict, method: str, paper: str | None, rows: dict | None) -> list[CellKey]:
    """The published cells one prompt-learning job's test fills, under the reports' like-with-like rules."""
    protocol, dataset, backbone = config["protocol"], config["dataset"], config["backbone"]
    training_free = config["method"] in ("zeroshot", "zeroshot_ensemble")
    shots = config.get("shots")
    if protocol == "fewshot":
        if training_free or not shots:
            return []  # the zero-shot column has no published values
        return cell_keys(method, backbone, dataset, paper, f"top1_acc_{shots}shot", rows, PROTOCOL_TABLES[protocol])
    if not training_free and shots != PAPER_SHOTS:
        return []
    if protocol == "base2novel":
        metric = {"base": "base_acc", "new": "novel_acc"}.get(config.get("subsample"))
        return cell_keys(method, backbone, dataset, paper, metric, rows, PROTOCOL_TABLES[protocol]) if metric else []
    source = config.get("source_dataset") or (dataset if not training_free else TRANSFER_SOURCE)
    if source != TRANSFER_SOURCE:
        return []
    # The source's own test is the source column of both transfer tables.
    tables = (*PROTOCOL_TABLES["cross_dataset"], *PROTOCOL_TABLES["domain_generalization"]) \
        if dataset == TRANSFER_SOURCE else PROTOCOL_TABLES[protocol]
    return cell_keys(method, backbone, dataset, paper, "top1_acc", rows, tables)


def job_cells(job, paper: str | None, rows: dict | None) -> list[CellKey]:
    """The published-cell keys one job would be compared with (its suite's ``paper`` and ``reference.rows``)."""
    c = job.config
    if "method" in c:
        return _prompt_keys(c, job.method, paper, rows)
    return cell_keys(job.method, c["backbone"], c["dataset"], paper, rows=rows)


def suite_cells(suite) -> set[CellKey]:
    """Every published-cell key a suite's jobs would be compared with (whether or not the paper printed it)."""
    paper = suite.reference.get("paper")
    rows = suite.reference.get("rows") or {}
    keys: set[CellKey] = set()
    for job in suite.jobs:
        keys.update(job_cells(job, paper, rows))
    # Base-to-novel HM: covered where both the base and the novel accuracy are.
    for key in list(keys):
        if key[5] == "base_acc" and (*key[:5], "novel_acc") in keys:
            keys.add((*key[:5], "hm"))
    return keys


def _average_members(ref: Reference) -> set[str]:
    members = set(AVERAGE_DATASETS.get((ref.paper_stem, ref.dataset), ())) or datasets_of(ref)
    if ref.table in (*PROTOCOL_TABLES["cross_dataset"], *PROTOCOL_TABLES["domain_generalization"]):
        members.discard(TRANSFER_SOURCE)
    return members


def member_keys(ref: Reference) -> set[CellKey]:
    """The per-dataset cells a published value draws on: itself, or for a printed average the cells it averages
    (a job filling one of them helps reproduce the table, e.g. the HM's base and novel accuracies)."""
    datasets = _average_members(ref) if ref.dataset.startswith("avg_") else {ref.dataset}
    metrics = ("base_acc", "novel_acc") if ref.metric == "hm" else (ref.metric,)
    return {(*cell_key(ref)[:4], d, m) for d in datasets for m in metrics}


def _is_covered(ref: Reference, keys: set[CellKey]) -> bool:
    if not ref.dataset.startswith("avg_"):
        return cell_key(ref) in keys
    members = _average_members(ref)
    return bool(members) and all((*cell_key(ref)[:4], d, ref.metric) in keys for d in members)


def _reason(ref: Reference) -> str:
    for exclusion in EXCLUSIONS:
        if (exclusion.paper, exclusion.table, exclusion.method) == (ref.paper_stem, ref.table, ref.method):
            return exclusion.reason
    return UNEXPLAINED


def coverage(suites: Iterable, papers: Iterable[str] | None = None) -> list[TableCoverage]:
    """Per published table of ``papers`` (default: those the suites name), its cells and their coverage."""
    suites = list(suites)
    wanted = list(papers) if papers is not None else sorted({s.reference.get("paper") for s in suites} - {None})
    keys: set[CellKey] = set().union(*(suite_cells(s) for s in suites)) if suites else set()
    tables: dict[tuple[str, str], TableCoverage] = {}
    references = load_references()
    for paper in wanted:
        for ref in references.get(paper, ()):
            table = tables.setdefault((paper, ref.table), TableCoverage(paper, ref.table, []))
            table.cells.append(ref)
            if _is_covered(ref, keys):
                table.covered.append(ref)
            else:
                table.uncovered.append((ref, _reason(ref)))
    return list(tables.values())


def summarize_uncovered(table: TableCoverage) -> list[tuple[str, str, int]]:
    """(row description, reason, number of cells) for a table's uncovered cells, grouped by row and reason."""
    groups: dict[tuple[str, str], int] = defaultdict(int)
    for ref, reason in table.uncovered:
        groups[(f"{ref.method} · {ref.backbone}", reason)] += 1
    return [(row, reason, n) for (row, reason), n in groups.items()]
