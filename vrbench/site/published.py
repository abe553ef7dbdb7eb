"""Which runs reproduce each published table of the suites' papers: the site's table pages in the paper's layout.

A published table (one ``table`` value of a reference CSV, e.g. SMM's "Table 1 (ILM output mapping)") gets the
suite jobs whose published cells (vrbench.report.coverage.job_cells: the lookup the reports and `vrbench ls
references --coverage` use) fall in it: a printed cell, or a cell that a printed average or HM is computed from.
Its page is the report of exactly those runs, compared with that table only: each row's reference rows are the
suite's ``reference.rows`` and the built-in aliases that point into this table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vrbench.report.coverage import TableCoverage, coverage, job_cells, member_keys
from vrbench.report.references import METHOD_ALIASES, RefSource


@dataclass(frozen=True)
class PublishedTable:
    """One published table and the suite jobs that reproduce its cells."""

    paper: str
    table: str
    slug: str  # the page's file name within its paper's folder
    published: int  # values the paper prints in this table
    covered: int  # of those, the ones some suite job reproduces (as `vrbench ls references --coverage` counts)
    run_ids: frozenset[str]
    labels: dict[str, str]  # run id -> the row name its suite gives it
    reference_rows: dict[str, tuple[RefSource, ...]]  # row name -> its rows in this table (report's reference_rows)
    suites: tuple[str, ...]


def readable_slug(name: str) -> str:
    """'Table 1 (ILM output mapping)' -> 'table-1-ilm-output-mapping' (made unique within a paper by the caller)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60].strip("-") or "table"


def _rows_in(label: str, rows: dict, paper: str, table: str) -> tuple[RefSource, ...]:
    sources = (*rows.get(label, ()), *METHOD_ALIASES.get(label, ()))
    return tuple(dict.fromkeys(s for s in sources if (s.paper, s.table) == (paper, table)))


def published_tables(suites: list) -> list[PublishedTable]:
    """Every published table of the papers the ``suites`` name, in the CSVs' order, with the jobs that reproduce
    it (a table none of whose cells has a job is listed too, with no runs)."""
    job_keys = []  # (suite, job, its published-cell keys), computed once per job
    for suite in suites:
        paper = suite.reference.get("paper")
        if paper is None:
            continue
        rows = suite.reference.get("rows") or {}
        job_keys += [(suite, job, set(job_cells(job, paper, rows))) for job in suite.jobs]
    out: list[PublishedTable] = []
    used: dict[str, set[str]] = {}
    for found in coverage(suites):
        out.append(_table(found, job_keys, used.setdefault(found.paper, set())))
    return out


def _table(found: TableCoverage, job_keys: list, used_slugs: set[str]) -> PublishedTable:
    wanted = set().union(*(member_keys(ref) for ref in found.cells)) if found.cells else set()
    run_ids, labels, rows, suites = set(), {}, {}, {}
    for suite, job, keys in job_keys:
        if suite.reference.get("paper") != found.paper or not keys & wanted:
            continue
        run_ids.add(job.run_id)
        labels.setdefault(job.run_id, job.method)
        suites[suite.name] = None
        if job.method not in rows:
            rows[job.method] = _rows_in(job.method, suite.reference.get("rows") or {}, found.paper, found.table)
    slug, number = readable_slug(found.table), 1
    while slug in used_slugs:
        number += 1
        slug = f"{readable_slug(found.table)}-{number}"
    used_slugs.add(slug)
    return PublishedTable(found.paper, found.table, slug, len(found.cells), len(found.covered), frozenset(run_ids),
                          labels, {k: v for k, v in rows.items() if v}, tuple(suites))
