"""Every published cell is reproduced by a paper-suite job or excluded with a documented reason (issue 10).

The five paper suites are expanded for real and matched against the packaged reference CSVs with the reports' own
lookup. A suite edit that drops a cell (or a new CSV row with no job) fails here, naming the cell.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vrbench.report.coverage import EXCLUSIONS, NO_PUBLISHED_VALUES, UNEXPLAINED, coverage
from vrbench.report.references import known_papers, load_references
from vrbench.suite import load_suite, parse_suite

REPO = Path(__file__).resolve().parent.parent
PAPER_SUITES = ("cvpr23", "neurips24", "icml24", "iccv23", "cvpr23-clip")


@pytest.fixture(scope="module")
def paper_coverage():
    suites = [load_suite(REPO / "suites" / f"{name}.yaml") for name in PAPER_SUITES]
    return coverage(suites, known_papers())


def test_every_published_cell_is_covered_or_excluded_with_a_reason(paper_coverage) -> None:
    unexplained = [f"{t.paper} · {t.table} · {ref.method} · {ref.backbone} · {ref.dataset} · {ref.metric}"
                   for t in paper_coverage for ref in t.unexplained]
    assert not unexplained, f"{len(unexplained)} published cells have no job and no reason:\n" + "\n".join(
        unexplained[:20])
    published = sum(len(rows) for rows in load_references().values())
    assert sum(len(t.cells) for t in paper_coverage) == published  # every row of every CSV was checked
    covered = {(t.paper, t.table): len(t.covered) for t in paper_coverage}
    assert covered[("ilm_vp_cvpr23", "main_cnn_table")] == 169
    assert covered[("smm_icml24", "Table 8 (UCF101 dataset-specific lr=0.01, decay 0.1)")] == 1
    assert covered[("smm_icml24", "Table 13 (ViT-L 384 input, 10 epochs, +FC finetuning)")] == 12  # with averages
    assert covered[("smm_icml24", "Table 14 (finetune FC layer +/- SMM)")] == 24
    # Issue 24: ProDA and PromptSRC's two intermediate ablation rows have jobs, so every published value of every
    # table is covered; only the papers without transcribed values (BLM, ILM-VP on CLIP) have no cell at all.
    assert covered[("promptsrc_iccv23", "Table 1 base-to-novel (16-shot base classes)")] == 216
    assert covered[("promptsrc_iccv23", "Suppl. per-dataset component ablation (base-to-novel)")] == 144
    assert [(t.paper, t.table, len(t.uncovered)) for t in paper_coverage if t.uncovered] == []
    assert sum(len(t.covered) for t in paper_coverage) == published


def test_the_exclusion_list_is_documented_and_has_no_stale_entry(paper_coverage) -> None:
    used = {(t.paper, t.table, ref.method) for t in paper_coverage for ref, reason in t.uncovered
            if reason != UNEXPLAINED}
    for exclusion in EXCLUSIONS:
        assert len(exclusion.reason) > 30, exclusion
        assert (exclusion.paper, exclusion.table, exclusion.method) in used, f"stale exclusion: {exclusion}"
    # Papers said to have no values really have none, and every paper without values says so.
    empty = {stem for stem, rows in load_references().items() if not rows}
    assert empty == set(NO_PUBLISHED_VALUES)


def test_a_suite_that_drops_a_published_cell_fails_the_check() -> None:
    text = (REPO / "suites" / "icml24.yaml").read_text(encoding="utf-8")
    start = text.index("  - {input: [smm], mapping: [ilm], backbone: [vit_b32], dataset: [ucf101]")
    end = text.index("\n", text.index("label: smm dataset-specific lr}}", start)) + 1
    dropped = parse_suite(text[:start] + text[end:], source="icml24-without-table8.yaml")
    (table8,) = [t for t in coverage([dropped]) if t.table.startswith("Table 8")]
    assert [ref.value for ref in table8.unexplained] == [49.9]


def test_ls_references_coverage_prints_each_table_and_the_reasons_without_torch() -> None:
    script = ("import contextlib, io, json, sys\n"
              "from vrbench.cli import main\n"
              "out = io.StringIO()\n"
              "sys.argv = ['vrbench', 'ls', 'references', '--coverage']\n"
              "with contextlib.redirect_stdout(out):\n"
              "    try:\n"
              "        main()\n"
              "    except SystemExit as exc:\n"
              "        assert not exc.code, exc.code\n"
              "torch = [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]\n"
              "print(json.dumps({'out': out.getvalue(), 'torch': torch[:3]}))\n")
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={"COLUMNS": "250", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["torch"] == []
    out = report["out"]
    assert "BLM: no published values available" in out
    assert "ILM-VP on CLIP: no published values available" in out
    assert "not implemented" not in out
    lines = [line for line in out.splitlines() if "component ablation" in line]
    assert lines and [cell.strip() for cell in lines[0].split("│")[3:6]] == ["144", "144", "0"]
    lines = [line for line in out.splitlines() if "Table 13 (ViT-L 384 input" in line]
    assert lines and [cell.strip() for cell in lines[0].split("│")[3:6]] == ["12", "12", "0"]
