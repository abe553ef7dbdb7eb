"""The static site (`vrbench site`): its pages, what a rebuild writes (counted), conflicts and provenance, bad
output folders, and no torch. Built from fabricated runs (vrbench.testing), no training."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vrbench.errors import ResultsError
from vrbench.site import build_site, paths
from vrbench.store import ingest
from vrbench.store.db import DB_NAME
from vrbench.store.rundir import RESULT, atomic_write_json, run_dir
from vrbench.suite import load_suite
from vrbench.testing.site import CVPR23, FAILED_ID, SMOKE, SiteResults, write_site_results

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def made(tmp_path: Path) -> SiteResults:
    made = write_site_results(tmp_path / "results")
    ingest(made.results, made.results / DB_NAME)
    return made


def test_pages_for_every_table_method_dataset_cell_and_run(made: SiteResults, tmp_path: Path) -> None:
    out = tmp_path / "site"
    stats = build_site(made.results, out, [load_suite(SMOKE)])
    assert (out / "index.html").exists() and (out / "tables/smoke.html").exists()
    for method in ("padding+rlm", "padding+flm", "padding+ilm", "padding+blm", "padding+blmpp"):
        assert (out / paths.method_page(method)).exists()
        assert (out / paths.cell_page(method, "efficientnet_lite0", "digits")).exists()
    assert (out / "datasets/digits.html").exists()
    for run_id in [*made.run_ids, FAILED_ID]:
        assert (out / paths.run_page(run_id)).exists()
        assert (out / paths.run_files(run_id) / "config.json").exists()
    for name in ("cells.csv", "cells.json"):
        assert (out / "tables/smoke" / name).stat().st_size > 100
    rows = json.loads((out / "tables/smoke/cells.json").read_text())
    assert {row["method"] for row in rows} == {"padding+rlm", "padding+flm", "padding+ilm", "padding+blm",
                                               "padding+blmpp"}
    assert len(stats.figures_written) == 7  # learning curves, comparison and 5 label mappings, as the report draws
    table = (out / "tables/smoke.html").read_text()
    assert 'href="../cells/padding+ilm,efficientnet_lite0,digits.html"' in table  # cell -> its runs
    cell = (out / paths.cell_page("padding+ilm", "efficientnet_lite0", "digits")).read_text()
    assert f'href="../{paths.run_page(FAILED_ID)}"' in cell  # runs -> each run page
    failed = (out / paths.run_page(FAILED_ID)).read_text()
    assert "out of &lt;memory&gt; &amp; gone" in failed  # escaped, never markup
    run = (out / paths.run_page(made.run_ids[2])).read_text()
    assert "<svg class=\"curve\"" in run and "Label mapping of run" in run
    shard = (out / f"search/runs-{made.run_ids[2][:2]}.js").read_text()
    assert made.run_ids[2] in shard


def test_a_rebuild_writes_only_what_changed(made: SiteResults, tmp_path: Path) -> None:
    out, suites = tmp_path / "site", [load_suite(SMOKE)]
    first = build_site(made.results, out, suites)
    assert len(first.pages_written) > 30
    manifest = (out / "site.json").stat().st_mtime_ns
    again = build_site(made.results, out, suites)
    assert again.pages_written == [] and again.files_written == [] and again.removed == []
    assert again.pages_kept == len(first.pages_written)
    assert (out / "site.json").stat().st_mtime_ns == manifest  # not even the manifest is written again

    changed = made.run_ids[3]  # one run gets another result
    result = json.loads((run_dir(made.results, changed) / RESULT).read_text())
    result.update(final_acc=result["final_acc"] + 7.0, best_test_acc=result["best_test_acc"] + 7.0)
    atomic_write_json(run_dir(made.results, changed) / RESULT, result)
    ingest(made.results, made.results / DB_NAME)
    third = build_site(made.results, out, suites)
    method = json.loads((run_dir(made.results, changed) / "config.json").read_text())["method"]
    cell = paths.cell_page(method, "efficientnet_lite0", "digits")
    assert set(third.pages_written) - {p for p in third.pages_written if p.startswith("tables/smoke/figures/")} == {
        paths.run_page(changed), cell, paths.method_page(method), "datasets/digits.html", "tables/smoke.html"}
    # (the home page shows counts, hosts and the last finish time, none of which changed)
    # the table redraws the figures that show its accuracy (and the mapping of its method, whose best run it now
    # is), not the learning curves nor the other methods' mappings
    assert set(third.figures_written) <= {"tables/smoke/figures/comparison.png",
                                          f"tables/smoke/figures/mapping-{method.replace('+', '-')}.png"}
    assert sorted(third.files_written) == sorted([f"{paths.run_files(changed)}/{name}" for name in
                                   ("config.json", "env.json", "metrics.jsonl", "mapping.json", "result.json")] \
        + ["tables/smoke/cells.csv", "tables/smoke/cells.json"])

    # a run that is gone takes its page and files with it
    import shutil

    gone = made.run_ids[4]
    shutil.rmtree(run_dir(made.results, gone))
    ingest(made.results, made.results / DB_NAME)
    fourth = build_site(made.results, out, suites)
    assert paths.run_page(gone) in fourth.removed and not (out / paths.run_page(gone)).exists()
    assert not (out / paths.run_files(gone) / "result.json").exists()


def test_a_changed_paper_run_rewrites_its_table_pages_only(made: SiteResults, tmp_path: Path) -> None:
    out, suites = tmp_path / "site", [load_suite(SMOKE), load_suite(CVPR23)]
    first = build_site(made.results, out, suites)
    assert PAPER_PAGE in first.pages_written
    again = build_site(made.results, out, suites)
    assert again.pages_written == [] and again.files_written == [] and again.removed == []

    changed = made.paper_run_ids[0]
    result = json.loads((run_dir(made.results, changed) / RESULT).read_text())
    result.update(final_acc=result["final_acc"] + 5.0, best_test_acc=result["best_test_acc"] + 5.0)
    atomic_write_json(run_dir(made.results, changed) / RESULT, result)
    ingest(made.results, made.results / DB_NAME)
    third = build_site(made.results, out, suites)
    config = json.loads((run_dir(made.results, changed) / "config.json").read_text())
    method, dataset = config["method"], config["config"]["dataset"]
    pages = {p for p in third.pages_written if "/figures/" not in p}
    assert pages == {paths.run_page(changed), paths.cell_page(method, "resnet18", dataset),
                     paths.method_page(method), paths.dataset_page(dataset), PAPER_PAGE}
    assert all(p.startswith("papers/ilm_vp_cvpr23/main-cnn-table/") for p in third.pages_written if "/figures/" in p)
    assert not any(p.startswith("tables/smoke") for p in third.pages_written + third.files_written)


def test_conflicts_and_provenance_are_shown(made: SiteResults, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site(made.results, out, [load_suite(SMOKE)])
    home = (out / "index.html").read_text()
    assert "1 conflict;" in home and made.conflict in home and "conflict: 2 results for one job" in home
    page = (out / paths.run_page(made.conflict)).read_text()
    assert "conflict: 2 results for one job" in page and "cluster-b" in page and "AVX2" in page
    # the env differences include the engine levers: the summary and the session's fields, highlighted
    for key in ("levers.shared_border", "sessions[1].shared_border", "sessions[1].shared_border_batches"):
        assert f'<tr class="lever"><th>{key}</th><td>off</td><td>on</td>' in page or \
            f'<tr class="lever"><th>{key}</th><td>0</td><td>19</td>' in page, key
    # the run page's own levers: per lever over the job, and its training session
    levers = page[page.index('id="levers"'):page.index('id="env"')]
    assert '<tr class="lever"><th>shared_border</th><td>off</td></tr>' in levers
    assert "<td>1–3</td>" in levers and '<td class="num">49</td>' in levers
    assert "<td>fold_batchnorm, fuse_activations</td>" in levers
    assert "Not recorded" in (out / paths.run_page(made.run_ids[5])).read_text()  # an env.json without levers
    other = out / paths.run_files(made.conflict) / made.alternate_key / "result.json"
    assert f'href="{made.conflict}/{made.alternate_key}/result.json"' in page and other.exists()
    assert json.loads(other.read_text())["final_acc"] != json.loads(
        (out / paths.run_files(made.conflict) / "result.json").read_text())["final_acc"]
    imported = (out / paths.run_page(made.imported)).read_text()
    assert "lab-b.vrbundle" in imported and "Provenance" in imported
    cell = (out / paths.cell_page(*_cell_of(made, made.conflict))).read_text()
    assert "conflict</b>" in cell
    table = (out / "tables/smoke.html").read_text()  # the report's conflicts section, linked to the run page
    assert 'id="conflicts"' in table and f'<a href="../{paths.run_page(made.conflict)}">{made.conflict}</a>' in table


def _cell_of(made: SiteResults, run_id: str) -> tuple[str, str, str]:
    config = json.loads((run_dir(made.results, run_id) / "config.json").read_text())
    return config["method"], config["config"]["backbone"], config["config"]["dataset"]


def test_a_folder_that_is_not_a_site_is_refused(made: SiteResults, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ResultsError, match="not a site vrbench built"):
        build_site(made.results, out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    with pytest.raises(ResultsError, match="vrbench collect"):
        build_site(tmp_path / "no-results", tmp_path / "elsewhere")


def test_slugs_never_collide_or_escape() -> None:
    names = ["a+b", "a-b", "a b", "a/b", "..", "a.b", "a~2fb"]
    slugs = [paths.slug(n) for n in names]
    assert len(set(slugs)) == len(slugs) and all("/" not in s and "." not in s for s in slugs)
    assert paths.href("runs/ab/abc.html", "cells/x.html") == "../runs/ab/abc.html"
    assert paths.href("index.html#methods", "runs/ab/abc.html") == "../../index.html#methods"


def test_vrbench_site_does_not_import_torch(made: SiteResults, tmp_path: Path) -> None:
    code = ("import sys; from vrbench.cli import main; sys.argv = ['vrbench', 'site', '--out', sys.argv[1], "
            "'--results', sys.argv[2], '--suite', sys.argv[3]]\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "site"), str(made.results), str(SMOKE)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "site" / "index.html").exists()


PAPER_PAGE = "papers/ilm_vp_cvpr23/main-cnn-table.html"


def test_a_page_per_published_table_with_the_runs_that_reproduce_it(made: SiteResults, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site(made.results, out, [load_suite(SMOKE), load_suite(CVPR23)])
    page = (out / PAPER_PAGE).read_text()
    # restricted to the cvpr23 runs that fill cells of ILM-VP's main table, compared with that table only
    rows = json.loads((out / "papers/ilm_vp_cvpr23/main-cnn-table/cells.json").read_text())
    assert {(r["method"], r["backbone"], r["dataset"]) for r in rows} == {
        (m, "resnet18", d) for m in ("padding+ilm", "padding+flm") for d in ("cifar10", "svhn")}
    assert {(r["paper"], r["paper_table"]) for r in rows} == {("ilm_vp_cvpr23", "main_cnn_table")}
    assert {r["n"] for r in rows} == {"3"} and all(r["diff"] for r in rows)
    ilm = next(r for r in rows if (r["rule"], r["method"], r["dataset"]) == ("best_test", "padding+ilm", "cifar10"))
    assert ilm["paper_method"] == "ILM-VP" and ilm["paper_value"] == "65.5"  # the CSV's value for that cell
    assert "12 runs (12 done, 0 failed)" in page and "169 published" in page and "4 with a result of ours" in page
    assert "paper† 65.5" in page and "Δ†" in page  # ours, the published value, Δ
    assert 'id="across-best_test"' in page  # the report's across-datasets table and CD diagrams
    figures = out / "papers/ilm_vp_cvpr23/main-cnn-table/figures"
    assert {"critical-difference-best-test.png", "paper-gap.png", "comparison.png"} <= {p.name for p in
                                                                                         figures.iterdir()}
    assert 'href="../../cells/padding+ilm,resnet18,cifar10.html"' in page  # a cell -> its runs
    cell = (out / paths.cell_page("padding+ilm", "resnet18", "cifar10")).read_text()
    assert sum(f'href="../{paths.run_page(r)}"' in cell for r in made.paper_run_ids) == 3  # -> each run page
    # the cvpr23 suite is exactly this table: one page for both, the home page's suite line links to it
    assert not (out / "tables/cvpr23.html").exists() and 'href="../../tables/' not in page
    assert "padding+blm" not in page  # no smoke run
    home = (out / "index.html").read_text()
    row = home[home.index(f'href="{PAPER_PAGE}"'):][:900]
    assert ">main_cnn_table<" in row and ">169<" in row and ">4<" in row and ">507<" in row and ">12<" in row
    assert 'href="tables/smoke.html"' in home
    suite_line = home[home.index("cvpr23: all runs") - 200:home.index("cvpr23: all runs")]
    assert f'href="{PAPER_PAGE}"' in suite_line and "the same runs as ILM-VP: main_cnn_table" in home
    index = (out / "search/index.js").read_text()
    assert PAPER_PAGE in index


def test_one_page_per_table_of_a_paper_and_the_coverage_lookup(tmp_path: Path) -> None:
    """Every table of SMM's paper gets a page: its runs are the suite jobs whose published cells lie in it (the
    coverage lookup), with the rows that point into that table only."""
    from vrbench.report.coverage import coverage
    from vrbench.site.published import published_tables

    suite = load_suite(ROOT / "suites" / "icml24.yaml")
    tables = published_tables([suite])
    assert [t.table for t in tables] == [c.table for c in coverage([suite])]
    assert len({t.slug for t in tables}) == len(tables)
    by_table = {t.table: t for t in tables}
    table10 = by_table["Table 10 (output label mapping variants)"]
    assert {table10.labels[r] for r in table10.run_ids} == {"full+ilm", "full+rlm", "full+flm", "smm+ilm",
                                                            "smm+rlm", "smm+flm"}
    assert {s.table for rows in table10.reference_rows.values() for s in rows} == {table10.table}
    assert table10.reference_rows["smm+ilm"][0].method == "SMM+ILM"  # not Table 1's "SMM" row
    table8 = by_table["Table 8 (UCF101 dataset-specific lr=0.01, decay 0.1)"]
    assert len(table8.run_ids) == 3 and table8.published == table8.covered == 1
    ids = {job.run_id for job in suite.jobs if job.method == "smm patch 1"}  # Figure 4: plotted, never printed
    assert not any(ids & t.run_ids for t in tables)


def test_a_prompt_learning_table_page_shows_base_novel_and_hm_beside_the_paper(tmp_path: Path) -> None:
    """PromptSRC's base-to-novel Table 1 from CoOp's EuroSAT jobs of suites/iccv23.yaml (trained on the base
    classes, evaluated on the new ones; fabricated results with the suite's own configs)."""
    from vrbench.store.rundir import ENV, atomic_write_json, now_iso, write_config

    suite = load_suite(ROOT / "suites" / "iccv23.yaml")
    results = tmp_path / "results"
    jobs = [j for j in suite.jobs if (j.config.get("protocol"), j.config.get("method"), j.config["dataset"])
            == ("base2novel", "coop", "eurosat")]
    assert len(jobs) == 6
    for job in jobs:
        directory = run_dir(results, job.run_id)
        write_config(directory, job.run_id, job.method, job.config, runtime={})
        atomic_write_json(directory / ENV, {"device": "cpu", "precision": "fp32", "threads": 2})
        acc = 90.0 + job.config["seed"] if job.config["stage"] == "train" else 60.0 + job.config["seed"]
        atomic_write_json(directory / RESULT, {
            "run_id": job.run_id, "status": "done", "epochs": job.config.get("epochs", 0), "final_acc": acc,
            "best_test_acc": None, "best_test_epoch": None, "best_val_acc": None, "best_val_epoch": None,
            "finished_at": now_iso()})
    ingest(results, results / DB_NAME)
    out = tmp_path / "site"
    build_site(results, out, [suite])
    folder = "papers/promptsrc_iccv23/table-1-base-to-novel-16-shot-base-classes"
    rows = json.loads((out / folder / "prompt_cells.json").read_text())
    eurosat = {r["column"]: r for r in rows if r["method"] == "coop" and r["row"] == "eurosat"}
    assert eurosat["Base"]["mean"] == "92.0000" and eurosat["Novel"]["mean"] == "62.0000"
    assert {r["paper_table"] for r in eurosat.values()} == {"Table 1 base-to-novel (16-shot base classes)"}
    assert all(r["paper_value"] and r["diff"] for r in eurosat.values()) and "HM" in eurosat
    page = (out / f"{folder}.html").read_text()
    assert "6 runs (6 done, 0 failed)" in page and "216 published" in page
    home = (out / "index.html").read_text()
    for table in ("table-1-base-to-novel-16-shot", "suppl-few-shot-per-dataset-table", "table-domain-generalization",
                  "suppl-per-dataset-component-ablation", "table-cross-dataset"):
        assert f'href="papers/promptsrc_iccv23/{table}' in home, table
