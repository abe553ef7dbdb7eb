"""``build_site``: the results index as a multi-page static site (see docs/site.md).

Pages: the home page; one per table (the report of a suite, in its paper's layout, with the report's figures and
CSV/JSON downloads); one per method, dataset and cell (method · backbone · dataset, the runs behind a table cell);
one per run (config, env with the engine levers, learning curve, label-mapping heatmap, files, provenance, the
other results of a conflicting job). Every link is relative and every script and figure is a file of the site, so
it opens from file:// and from any static host with nothing fetched from elsewhere.

Only pages whose data changed are written again (vrbench.site.writer): a page's fingerprint is its view (or, for
a run page, the run's row in the index, whose ``source_digest`` covers its files), so a rebuild after 100 new runs
renders about 100 run pages plus the few pages that summarise them. Never imports torch.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from vrbench.errors import ResultsError
from vrbench.report.build import cells_csv, load_model, prompt_cells_csv
from vrbench.report.figures import MANIFEST as FIGURES_MANIFEST
from vrbench.report.figures import _canonical, build_figures, manifest
from vrbench.report.html import Links, report_context, template_env
from vrbench.report.references import cell_key, load_references
from vrbench.site import paths, views
from vrbench.site.data import RunInfo, SiteData, load_epochs, load_site_data
from vrbench.site.published import PublishedTable, published_tables
from vrbench.site.writer import Content, SiteWriter, WriteStats
from vrbench.store.db import DB_NAME
from vrbench.store.rundir import CONFIG, ENV, ERROR, MAPPING, METRICS, RESULT, run_dir

SITE_VERSION = "1"  # bump when a page's layout changes without its templates changing
TEMPLATES = Path(__file__).parent / "templates"
ASSETS = Path(__file__).parent / "assets"
RUN_FILES: tuple[str, ...] = (CONFIG, ENV, METRICS, MAPPING, RESULT, ERROR, "provenance.json")
ALTERNATE_FILES: tuple[str, ...] = (RESULT, ENV, METRICS, MAPPING, "provenance.json")
RUN_BATCH = 500  # run pages drawn per batch: their learning curves are read from the index batch by batch


@dataclass(frozen=True)
class SiteTable:
    """One table page: a published table of a paper (the suite runs that reproduce its cells, compared with that
    table), all runs of a suite (compared with its paper), or every run when no suite is given."""

    name: str
    title: str
    description: str
    paper: str | None
    reference_rows: dict | None
    run_ids: frozenset[str] | None
    jobs: int | None
    path: str
    folder: str  # its figures and downloads
    labels: dict[str, str] | None = None  # run id -> the row name its suite gives it
    published: PublishedTable | None = None
    same_as: SiteTable | None = None  # a suite whose jobs are exactly one published table's: no page of its own


@lru_cache(maxsize=1)
def _code_digest() -> str:
    """Templates (the site's and the report's), assets and the code that turns data into pages (the site's and the
    report's modules): a change to any (a vrbench upgrade) re-renders every page."""
    digest = hashlib.sha256(SITE_VERSION.encode())
    from vrbench.report.html import TEMPLATES as REPORT_TEMPLATES

    code = Path(__file__).parent, REPORT_TEMPLATES.parent
    for directory in (TEMPLATES, REPORT_TEMPLATES, ASSETS, *code):
        for path in sorted(directory.iterdir()):
            if path.is_file() and (directory not in code or path.suffix == ".py"):
                digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def fingerprint(kind: str, data: Any) -> str:
    return hashlib.sha256(f"{_code_digest()}\n{kind}\n{_canonical(data)!r}".encode()).hexdigest()


class SiteLinks(Links):
    """Table cells -> cell pages, row labels -> method pages, failed runs -> run pages, from one page."""

    def __init__(self, page: str, data: SiteData, stored: dict[str, str] | None = None) -> None:
        self.page, self.data, self.stored = page, data, stored or {}
        self.run_ids = {r.run_id for r in data.runs}

    def cell(self, method: str, backbone: str, dataset: str) -> str | None:
        key = (self.stored.get(method, method), backbone, dataset)
        return paths.href(paths.cell_page(*key), self.page) if key in self.data.by_cell else None

    def method(self, method: str) -> str | None:
        method = self.stored.get(method, method)
        return paths.href(paths.method_page(method), self.page) if method in self.data.methods() else None

    def run(self, run_id: str) -> str | None:
        return paths.href(paths.run_page(run_id), self.page) if run_id in self.run_ids else None


class SiteBuilder:
    def __init__(self, results: Path, out: Path, tables: list[SiteTable], suites: list) -> None:
        self.results, self.out, self.tables, self.suites = Path(results), Path(out), tables, suites
        self.db = self.results / DB_NAME
        self.writer = SiteWriter(self.out)
        self.env = template_env(TEMPLATES)
        self.data: SiteData = load_site_data(self.db)

    def render(self, template: str, page: str, title: str, crumbs: list[tuple[str, str]] = (), **context: Any) -> str:
        site = {"root": paths.root(page), "title": title,
                "crumbs": [{"text": text, "href": paths.href(target, page) if target else ""}
                           for text, target in crumbs]}
        return self.env.get_template(template).render(site=site, **context)

    # ------------------------------------------------------------------------------------------ pages

    def build(self) -> WriteStats:
        self.assets()
        pages = [t for t in self.tables if t.same_as is None]
        table_links = [{"title": t.title, "path": t.path, "methods": self._table_methods(t)} for t in pages]
        drawn = {t.name: self.table_page(t) for t in pages}
        home_tables = [drawn[t.name] if t.same_as is None else self._same_as(t, drawn[t.same_as.name])
                       for t in self.tables]
        for method in self.data.methods():
            in_tables = [t for t in table_links if method in t["methods"]]
            page = paths.method_page(method)
            view = views.method_view(method, self.data, page, in_tables)
            self._page(page, "method", view, lambda p=page, v=view: self.render(
                "method.html.j2", p, f"Method {v['name']}", [("methods", "index.html#methods")], method=v))
        for dataset in self.data.datasets():
            page = paths.dataset_page(dataset)
            view = views.dataset_view(dataset, self.data, page)
            self._page(page, "dataset", view, lambda p=page, v=view: self.render(
                "dataset.html.j2", p, f"Dataset {v['name']}", [("datasets", "index.html#datasets")], dataset=v))
        for key in self.data.by_cell:
            page = paths.cell_page(*key)
            view = views.cell_view(key, self.data, page)
            self._page(page, "cell", view, lambda p=page, v=view, k=key: self.render(
                "cell.html.j2", p, " · ".join(k), [(v["method"], paths.method_page(v["method"]))], cell=v))
        self.run_pages()
        self.search_index()
        self.home(home_tables)
        return self.writer.finish()

    def assets(self) -> None:
        """The site's script and styles, and the report's CSS and table script from the report's own template
        (its blocks head_style and table_script), written once instead of inline on every page."""
        report = self.env.get_template("report.html.j2")
        files = {name: (ASSETS / name).read_text(encoding="utf-8") for name in ("search.js", "site.css")}
        for name, block, tag in (("report.css", "head_style", "style"), ("tables.js", "table_script", "script")):
            text = "".join(report.blocks[block](report.new_context({}))).strip()
            files[name] = text.removeprefix(f"<{tag}>").removesuffix(f"</{tag}>").strip("\n") + "\n"
        for name, text in files.items():
            self.writer.page(f"assets/{name}", fingerprint("asset", text), lambda t=text: (t, {}))

    def _page(self, page: str, kind: str, view: Any, render: Any) -> bool:
        return self.writer.page(page, fingerprint(kind, view), lambda: (render(), {}))

    @staticmethod
    def _same_as(table: SiteTable, entry: dict[str, Any]) -> dict[str, Any]:
        """The home page's line of a suite folded into the published table it equals."""
        return {**entry, "title": table.title, "coverage": None,
                "description": f"{table.description} (the same runs as {entry['title']}: one page for both)"}

    def _table_methods(self, table: SiteTable) -> set[str]:
        return {r.method for r in self.data.runs if table.run_ids is None or r.run_id in table.run_ids}

    def table_page(self, table: SiteTable) -> dict[str, Any]:
        """The report of ``table``'s runs with its figures (drawn only when their data changed) and downloads."""
        run_ids = None if table.run_ids is None else set(table.run_ids)
        model = load_model(self.db, run_ids, table.paper, (), table.reference_rows, table.labels)
        folder, page = table.folder, table.path
        figures = build_figures(self.db, model, run_ids, previous=self.out / folder / "figures", labels=table.labels)
        for fig in figures:  # each figure is written only when its data changed (its digest, as in the report)
            self.writer.page(f"{folder}/figures/{fig.key}.png", fig.digest, lambda png=fig.png: (png, {}))
        listing = manifest(figures)  # lets build_figures find them unchanged next time
        self.writer.page(f"{folder}/figures/{FIGURES_MANIFEST}", fingerprint("figures", listing),
                         lambda: (listing, {}))
        files: dict[str, Content] = {}
        downloads = {"cells.csv": cells_csv(model)}
        if model.prompt_sections:
            downloads["prompt_cells.csv"] = prompt_cells_csv(model)
        for name, text in list(downloads.items()):
            downloads[name.replace(".csv", ".json")] = _csv_to_json(text)
        files.update({f"{folder}/{name}": text for name, text in downloads.items()})
        paper_title = _paper_title(table.paper)
        links = [{"name": name, "href": paths.href(f"{folder}/{name}", page)} for name in downloads]
        entry = {"title": table.title, "href": page, "paper": paper_title or views.NONE,
                 "description": table.description, "jobs": views.NONE if table.jobs is None else table.jobs,
                 "done": model.n_done, "failed": model.n_failed,
                 "downloads": [{"name": d["name"], "href": f"{folder}/{d['name']}"} for d in links]}
        if table.published is not None:
            entry.update(published_view(table.published, model))
        meta = {"description": table.description, "paper_title": paper_title, "downloads": links,
                "published": entry.get("coverage"), "other_pages": self._other_pages(table, page)}
        stable = replace(model, generated_at=datetime(1970, 1, 1))  # the page shows when its data last changed
        digest = fingerprint("table", (table.name, table.title, meta, stable, [(f.key, f.digest) for f in figures]))

        def produce() -> tuple[str, dict[str, Content]]:
            context = report_context(model, figures, SiteLinks(page, self.data, self._stored_names(table)),
                                     lambda fig: paths.href(f"{folder}/figures/{fig.key}.png", page))
            return self.render("site_table.html.j2", page, table.title, table=meta, **context), files

        self.writer.page(page, digest, produce)
        return entry

    def _stored_names(self, table: SiteTable) -> dict[str, str]:
        """Row name on ``table`` -> the method name in the index (its cell and method pages), where they differ."""
        if not table.labels:
            return {}
        stored = {r.run_id: r.method for r in self.data.runs if r.run_id in table.labels}
        names: dict[str, set[str]] = defaultdict(set)
        for run_id, label in table.labels.items():
            if run_id in stored:
                names[label].add(stored[run_id])
        return {label: next(iter(methods)) for label, methods in names.items()
                if len(methods) == 1 and label not in methods}

    def _other_pages(self, table: SiteTable, page: str) -> list[dict[str, str]]:
        """A published table links to the other tables of its paper and to its suites' pages of all runs."""
        if table.published is None:
            return []
        suites = set(table.published.suites)
        return [{"title": t.title, "href": paths.href(t.path, page)} for t in self.tables
                if t is not table and t.same_as is None and ((t.published is not None and t.paper == table.paper)
                                                             or (t.published is None and t.name in suites))]

    def run_pages(self) -> None:
        """Run pages whose row changed, drawn in batches (their learning curves read for that batch only)."""
        pending: list[tuple[RunInfo, str]] = []
        for run in self.data.runs:
            page = paths.run_page(run.run_id)
            conflict = self.data.conflicts.get(run.run_id)
            # the row's repr (values read from the index, never summed, so stable to the last bit): the canonical
            # form of 10,000 rows would cost more than the rest of a rebuild
            digest = hashlib.sha256(f"{_code_digest()}\nrun\n{run!r}\n{conflict.note if conflict else None}\n"
                                    f"{[r.result_key for r in conflict.results] if conflict else None}"
                                    .encode()).hexdigest()
            if self.writer.unchanged(page, digest):
                self.writer.page(page, digest, _never)
            else:
                pending.append((run, digest))
        for start in range(0, len(pending), RUN_BATCH):
            batch = pending[start:start + RUN_BATCH]
            epochs = load_epochs(self.db, [run.run_id for run, _ in batch])
            for run, digest in batch:
                self.writer.page(paths.run_page(run.run_id), digest,
                                 lambda r=run, e=epochs: self.run_page(r, e.get(r.run_id, [])))

    def run_page(self, run: RunInfo, epochs: list) -> tuple[str, dict[str, Content]]:
        from markupsafe import Markup

        from vrbench.report.heatmap import render_heatmap
        from vrbench.site.curve import curve_svg

        page = paths.run_page(run.run_id)
        directory = run_dir(self.results, run.run_id)
        folder = paths.run_files(run.run_id)
        files: dict[str, Content] = {}
        listed = []
        for name in RUN_FILES:
            source = directory / name
            if source.is_file():
                files[f"{folder}/{name}"] = source
                listed.append({"name": name, "href": paths.href(f"{folder}/{name}", page),
                               "size": _size(source.stat().st_size)})
        env = _read_json(directory / ENV)
        heatmap = ""
        if (directory / MAPPING).is_file():
            try:
                heatmap = Markup(render_heatmap(self.results, run.run_id))
            except (ResultsError, KeyError, TypeError, ValueError, IndexError):
                heatmap = ""  # a mapping.json the heatmap cannot read: the file is still listed
        conflict = self.data.conflicts.get(run.run_id)
        if conflict is not None:
            for result in conflict.results:
                if not result.counted:
                    for name in ALTERNATE_FILES:
                        source = self.results / result.location / name
                        if source.is_file():
                            files[f"{folder}/{result.result_key}/{name}"] = source
        result = [("status", run.status), ("final_acc", views.acc_view(run.final_acc)["text"]),
                  ("best_test_acc", _at(run.best_test_acc, run.best_test_epoch)),
                  ("best_val_acc", _at(run.best_val_acc, run.best_val_epoch)),
                  ("epochs", views.NONE if run.epochs is None else str(run.epochs)),
                  ("train_seconds", views.NONE if run.train_seconds is None else f"{run.train_seconds:.1f}"),
                  ("finished_at (UTC)", views._time(run.finished_at)), ("source", run.source)]
        if run.status == "failed":
            result += [("error", f"{run.error_type}: {run.error_message}")]
        provenance = []
        if run.bundle or run.source_host:
            provenance = [("bundle", run.bundle or views.NONE), ("exported by host", run.source_host or views.NONE),
                          ("exported at (UTC)", views._time(run.exported_at)),
                          ("imported at (UTC)", views._time(run.imported_at))]
        view = {
            "run_id": run.run_id, "method": run.method, "backbone": run.backbone, "dataset": run.dataset,
            "seed": views.NONE if run.seed is None else run.seed, "setting": run.setting,
            "method_href": paths.href(paths.method_page(run.method), page),
            "dataset_href": paths.href(paths.dataset_page(run.dataset), page),
            "cell_href": paths.href(paths.cell_page(*run.cell), page),
            "conflict": views.conflict_view(conflict, page) if conflict else None,
            "result": result, "curve": Markup(curve_svg(epochs)), "heatmap": heatmap,
            "config": [(k, json.dumps(v, sort_keys=True)) for k, v in sorted(run.config_dict().items())],
            "env": [(k, json.dumps(v, sort_keys=True) if not isinstance(v, str) else v)
                    for k, v in sorted(env.items())],
            "levers": views.LEVERS, "engine": views.levers_view(env), "provenance": provenance, "files": listed,
        }
        crumbs = [(run.method, paths.method_page(run.method)), (" · ".join(run.cell), paths.cell_page(*run.cell))]
        return self.render("run.html.j2", page, f"Run {run.run_id}", crumbs, run=view), files

    def search_index(self) -> None:
        """search/index.js (tables, methods, datasets, cells) and one search/runs-XX.js per run-id prefix."""
        entries = [["table", t.title, t.path] for t in self.tables]  # a folded suite finds its table
        entries += [["method", m, paths.method_page(m)] for m in self.data.methods()]
        entries += [["dataset", d, paths.dataset_page(d)] for d in self.data.datasets()]
        entries += [["cell", " · ".join(k), paths.cell_page(*k)] for k in sorted(self.data.by_cell)]
        shards: dict[str, list[list[str]]] = defaultdict(list)
        for run in self.data.runs:
            label = " · ".join(str(x) for x in (run.method, run.backbone, run.dataset, f"seed {run.seed}",
                                                run.setting, run.status) if x)
            shards[run.run_id[:2]].append([run.run_id, label, paths.run_page(run.run_id)])
        index = {"entries": entries, "shards": sorted(shards)}
        self.writer.page("search/index.js", fingerprint("search", index),
                         lambda: (f"window.VRBENCH_SEARCH = {json.dumps(index, separators=(',', ':'))};\n", {}))
        for prefix, rows in shards.items():
            self.writer.page(f"search/runs-{prefix}.js", fingerprint("shard", rows),
                             lambda p=prefix, r=rows: (f"window.VRBENCH_RUNS({json.dumps(p)}, "
                                                       f"{json.dumps(r, separators=(',', ':'))});\n", {}))

    def home(self, tables: list[dict[str, Any]]) -> None:
        page = paths.HOME
        papers: dict[str, dict[str, Any]] = {}
        for table, entry in zip(self.tables, tables, strict=True):
            if table.published is not None:
                paper = papers.setdefault(table.paper, {"stem": table.paper, "title": entry["paper"],
                                                        "anchor": f"paper-{paths.slug(table.paper)}", "tables": []})
                paper["tables"].append(entry)
        data = self.data
        counts = defaultdict(int)
        for run in data.runs:
            counts[run.status] += 1
        by_method, by_dataset = defaultdict(int), defaultdict(int)
        for run in data.runs:
            by_method[run.method] += 1
            by_dataset[run.dataset] += 1
        view = {
            "n_runs": len(data.runs), "n_done": counts["done"], "n_failed": counts["failed"],
            "last_update": views._time(data.last_update), "papers": list(papers.values()),
            "tables": [e for t, e in zip(self.tables, tables, strict=True) if t.published is None],
            "suites": [s.name for s in self.suites],
            "hosts": [{"name": name, "runs": n} for name, n in sorted(data.hosts.items())],
            "conflicts": [{"run_id": c.run_id, "href": paths.run_page(c.run_id), "summary": c.note}
                          for c in data.conflicts.values()],
            "methods": [{"name": m, "href": paths.method_page(m), "runs": by_method[m]} for m in data.methods()],
            "datasets": [{"name": d, "href": paths.dataset_page(d), "runs": by_dataset[d]} for d in data.datasets()],
        }
        self._page(page, "home", view, lambda: self.render("home.html.j2", page, "Home", home=view))


def _never() -> tuple[Content, dict[str, Content]]:
    raise AssertionError("an unchanged page is never produced")


def _at(value: float | None, epoch: int | None) -> str:
    text = views.acc_view(value)["text"]
    return text if value is None or epoch is None else f"{text} (epoch {epoch})"


def _size(count: int) -> str:
    return f"{count} B" if count < 1024 else f"{count / 1024:.1f} KiB" if count < 1 << 20 else \
        f"{count / (1 << 20):.1f} MiB"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _csv_to_json(text: str) -> str:
    """The same rows as the CSV download, as a JSON list of objects (one implementation of the table's rows)."""
    return json.dumps(list(csv.DictReader(io.StringIO(text))), indent=1) + "\n"


def _paper_title(stem: str | None) -> str:
    if stem is None:
        return ""
    rows = load_references().get(stem, ())
    return rows[0].paper if rows else stem


def tables_for(results: Path, suites: list) -> list[SiteTable]:
    """A page per published table of the suites' papers (the runs reproducing its cells), then one per suite (all
    its runs, compared with its paper); without suites, one table of every run."""
    if not suites:
        return [SiteTable("all", "All runs", f"Every run in {results}.", None, None, None, None,
                          paths.table_page("all"), paths.table_files("all"))]
    tables = []
    for found in published_tables(suites):
        short = _paper_title(found.paper).split(" (")[0] or found.paper
        tables.append(SiteTable(
            f"{found.paper}/{found.slug}", f"{short}: {found.table}",
            f"The runs of {', '.join(found.suites) or 'no suite'} that reproduce the cells of {found.table}, "
            f"compared with that table.", found.paper, found.reference_rows, found.run_ids, len(found.run_ids),
            paths.paper_table_page(found.paper, found.slug), paths.paper_table_files(found.paper, found.slug),
            found.labels, found))
    for suite in suites:
        paper = suite.reference.get("paper")
        run_ids = frozenset(job.run_id for job in suite.jobs)
        # a suite that is exactly one published table (ILM-VP's cvpr23 is its main table) would be the same report
        # twice, its figures drawn twice: it links to that table instead
        same = next((t for t in tables if t.published is not None and t.paper == paper and t.run_ids == run_ids
                     and t.published.suites == (suite.name,)), None)
        tables.append(SiteTable(suite.name, f"{suite.name}: all runs" + (f" ({paper})" if paper else ""),
                                suite.description or "", paper, suite.reference.get("rows"), run_ids,
                                len(suite.jobs), same.path if same else paths.table_page(suite.name),
                                same.folder if same else paths.table_files(suite.name),
                                {job.run_id: job.method for job in suite.jobs}, same_as=same))
    return tables


def published_view(table: PublishedTable, model: Any) -> dict[str, Any]:
    """A published table's coverage: values printed, with a job in the suites, with a result of ours here."""
    ours = {cell_key(ref) for ref in _model_refs(model) if ref.table == table.table}
    return {"coverage": {"published": table.published, "covered": table.covered, "reproduced": len(ours),
                         "share": f"{len(ours) / table.published:.4f}" if table.published else "0",
                         "share_text": f"{100 * len(ours) / table.published:.0f} %" if table.published else
                         views.NONE, "table": table.table, "paper": table.paper,
                         "anchor": f"paper-{paths.slug(table.paper)}"}}


def _model_refs(model: Any) -> list:
    """The published values the model's cells are compared with (leaderboards and prompt tables)."""
    refs = [cell.ref for board in model.boards for row in board.rows for cell in row.cells.values()
            if cell.ref is not None]
    return refs + [ref for section in model.prompt_sections for ref in section.references]


def build_site(results: Path, out: Path, suites: list | None = None) -> WriteStats:
    """Write (or update) the site for ``results`` (its index must be current) into ``out``; ``suites`` are
    loaded suites (vrbench.suite.load_suite), one table page each. Returns what was written and removed."""
    results, out = Path(results), Path(out)
    if not (results / DB_NAME).exists():
        raise ResultsError(f"no index in {results}: run `vrbench collect --results {results}` first")
    suites = list(suites or [])
    try:
        return SiteBuilder(results, out, tables_for(results, suites), suites).build()
    except OSError as exc:
        raise ResultsError(f"Cannot write the site to {out}: {exc.strerror or exc}. Choose a writable directory "
                           "with --out.") from exc
