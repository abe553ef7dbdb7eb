"""HTML figures, file permissions and LaTeX tables of the report, on run directories written by the store."""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vrbench.errors import ConfigError
from vrbench.report import build_report, load_model
from vrbench.report.formatting import ours
from vrbench.report.latex import tex
from vrbench.store import ingest
from vrbench.store.db import DB_NAME
from vrbench.testing.runs import index_mapping, learning_curve, write_finished_run, write_suite_results

SMOKE = Path(__file__).resolve().parents[1] / "suites" / "smoke.yaml"
PNG = b"\x89PNG\r\n\x1a\n"
EVIL = "evil&_%$#{}~^\\"


def cifar_run(root: Path, run_id: str, seed: int, final: float, method: str = "padding+ilm") -> None:
    """A run that the ILM-VP paper reports (padding+ilm, ResNet-18, CIFAR10), so the report has a published value."""
    inp, _, mapping = method.partition("+")
    config = {"protocol": "vr", "input": inp, "mapping": mapping, "backbone": "resnet18", "dataset": "cifar10",
              "seed": seed, "epochs": 4}
    rng = random.Random(seed)
    write_finished_run(root, run_id, method, config, learning_curve(4, final, rng),
                       index_mapping(1000, [f"c{i}" for i in range(10)], rng))


@pytest.fixture(scope="module")
def html(db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HTML report of ``db``, built once for the tests that only read it."""
    return build_report(db, tmp_path_factory.mktemp("html") / "out", "html")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by the tests of this module, which only read it (a test that adds runs copies it first)."""
    root = tmp_path_factory.mktemp("figures") / "results"
    write_suite_results(SMOKE, root)
    cifar_run(root, "00000000000000a1", 0, 60.0)
    cifar_run(root, "00000000000000a2", 1, 64.0)
    cifar_run(root, "00000000000000b1", 0, 40.0, method=f"padding+{EVIL}")
    path = root / DB_NAME
    assert ingest(root, path).done == 13
    return path


def embedded(page: str) -> dict[str, bytes]:
    """figure id -> the PNG bytes of its data: URI."""
    found = re.findall(r'<figure id="fig-([a-z0-9-]+)"[^>]*>\s*<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"',
                       page)
    return {key: base64.b64decode(data) for key, data in found}


def test_html_embeds_every_figure_and_writes_the_same_pngs(html: Path) -> None:
    out = html.parent
    page = html.read_text()
    figures = embedded(page)
    mappings = {f"mapping-padding-{m}" for m in ("rlm", "flm", "ilm", "blm", "blmpp")}
    assert {"learning-curves", "comparison", "paper-gap"} | mappings <= set(figures)
    assert len([k for k in figures if k.startswith("mapping-padding-evil")]) == 1  # a safe file name
    for key, png in figures.items():
        assert png.startswith(PNG)
        assert (out / "figures" / f"{key}.png").read_bytes() == png
    ilm = page.split('id="fig-mapping-padding-ilm"')[1].split("</figure>")[0]
    assert "00000000000000a2" in ilm  # padding+ilm's best run is the 64 % CIFAR10 one, not a digits run
    assert "Black diamonds: the published values" in page


def test_figures_only_from_the_selected_runs(db: Path, tmp_path: Path) -> None:
    page = build_report(db, tmp_path / "out", "html", run_ids={"00000000000000a1"}).read_text()
    figures = embedded(page)
    assert set(figures) == {"learning-curves", "comparison", "paper-gap", "mapping-padding-ilm"}
    assert "00000000000000a2" not in page


def test_tables_are_sortable_and_read_without_javascript(db: Path, html: Path) -> None:
    page = html.read_text()
    assert page.count('<table class="sortable">') == 2  # the two leaderboards (final, best_test)
    assert page.count("<script") == 1
    # the sort marks are drawn only once the script has run (class "js" on <html>)
    assert ".js table.sortable thead th::after" in page and "thead th.num::after" not in page
    # every number carries its exact value for sorting; the text shows the rounded one
    board = next(b for b in load_model(db).boards if b.rule == "final")
    for row in board.rows:
        for cell in row.cells.values():
            assert re.search(rf'<td class="num(?: top)?" data-value="{re.escape(repr(cell.mean))}" title="[^"]*">'
                             rf'{re.escape(ours(cell))}', page)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_report_files_honour_the_umask(db: Path, html: Path, tmp_path: Path, umask: int) -> None:
    out = tmp_path / "out"
    shutil.copytree(html.parent, out)  # unchanged figures are not drawn again, but every file is written anew
    for path in out.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)
    previous = os.umask(umask)
    try:
        build_report(db, out, "html")
        build_report(db, out, "latex")
    finally:
        os.umask(previous)
    files = [out / "index.html", out / "index.tex", out / "cells.csv", *(out / "figures").iterdir()]
    assert len(files) > 5
    assert {oct(path.stat().st_mode & 0o777) for path in files} == {oct(0o666 & ~umask)}
    assert not list(out.glob(".*.tmp"))


def test_latex_layout(db: Path, tmp_path: Path) -> None:
    text = build_report(db, tmp_path / "out", "latex", with_paper=True).read_text()
    tables = text.split(r"\begin{table}")[1:]
    assert len(tables) == 2  # final and best_test
    best = next(t for t in tables if "tab:vrbench-best-test" in t)
    assert best.count(r"\toprule") == best.count(r"\midrule") == best.count(r"\bottomrule") == 1
    header = next(line for line in best.splitlines() if line.startswith("Method &"))
    assert header == r"Method & Backbone & cifar10 & digits & Avg. \\"
    ilm = next(line for line in best.splitlines() if line.startswith("padding+ilm & resnet18"))
    # the best of the CIFAR10 column (62.0 = mean of 60 and 64 under best_test? no: of the two runs' maxima)
    cells = ilm.removesuffix(r" \\").split(" & ")
    assert cells[2].startswith(r"\textbf{") and r"$\pm$" in cells[2] and "{\\footnotesize(65.5)}" in cells[2]
    assert tex(f"padding+{EVIL}") in text and EVIL not in text
    final = next(t for t in tables if "tab:vrbench-final" in t)
    assert "footnotesize(" not in final and r"best\_test rule only" in final  # the papers' rule only
    with pytest.raises(ConfigError, match="--with-paper is for --format latex"):
        build_report(db, tmp_path / "md", "md", with_paper=True)


def test_latex_compiles_with_pdflatex(db: Path, tmp_path: Path) -> None:
    engine = shutil.which("pdflatex")
    if engine is None:
        pytest.skip("no TeX engine on PATH: install Debian's texlive-latex-base and texlive-latex-recommended "
                    "(.ci/run does); test_latex_layout checks the structure meanwhile")
    out = tmp_path / "out"
    build_report(db, out, "latex", with_paper=True)
    (out / "paper.tex").write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
                                   "\\input{index}\n\\end{document}\n")
    done = subprocess.run([engine, "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=out,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    assert (out / "paper.pdf").read_bytes().startswith(b"%PDF")
    assert "Output written on paper.pdf" in done.stdout and "LaTeX Error" not in done.stdout
    assert "Missing character" not in (out / "paper.log").read_text()  # every name was escaped into ASCII


def test_help_and_markdown_report_do_not_import_matplotlib(db: Path, tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from vrbench.report import build_report; "
            f"build_report(Path({str(db)!r}), Path({str(tmp_path / 'md')!r})); "
            "print(sorted(m for m in ('matplotlib', 'torch', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    helped = subprocess.run([sys.executable, "-c", "import sys; from vrbench.cli import main; sys.argv=['vrbench', "
                             "'report', '--help']; import contextlib\ntry: main()\nexcept SystemExit: pass\n"
                             "print([m for m in ('matplotlib', 'torch') if m in sys.modules])"],
                            capture_output=True, text=True, check=True)
    assert helped.stdout.strip().endswith("[]") and "--with-paper" in helped.stdout


def _build_in_fresh_process(db: Path, out: Path) -> bool:
    """Build the HTML report in a new interpreter; True when it had to import matplotlib (i.e. drew something)."""
    code = ("import sys; from pathlib import Path; from vrbench.report import build_report; "
            f"build_report(Path({str(db)!r}), Path({str(out)!r}), 'html'); print('matplotlib' in sys.modules)")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "True"


def test_unchanged_figures_are_read_back_not_drawn(db: Path, tmp_path: Path) -> None:
    shutil.copytree(db.parent, tmp_path / "results")  # this test adds a run
    db = tmp_path / "results" / db.name
    out = tmp_path / "out"
    assert _build_in_fresh_process(db, out)
    before = {p.name: p.read_bytes() for p in (out / "figures").glob("*.png")}
    page = (out / "index.html").read_text()
    assert not _build_in_fresh_process(db, out)  # same runs: every figure comes from figures/, none is drawn
    assert {p.name: p.read_bytes() for p in (out / "figures").glob("*.png")} == before
    assert embedded((out / "index.html").read_text()) == embedded(page)
    cifar_run(db.parent, "00000000000000a3", 2, 70.0)  # a third seed changes the curves, the bars and the gap
    ingest(db.parent, db)
    assert _build_in_fresh_process(db, out)
    after = {p.name: p.read_bytes() for p in (out / "figures").glob("*.png")}
    assert after["learning-curves.png"] != before["learning-curves.png"]
    assert after["mapping-padding-rlm.png"] == before["mapping-padding-rlm.png"]
    (out / "figures" / "figures.json").write_text("{not json")  # a damaged manifest: everything is drawn again
    build_report(db, out, "html")
    assert json.loads((out / "figures" / "figures.json").read_text()).keys() == {p.stem for p in
                                                                               (out / "figures").glob("*.png")}
