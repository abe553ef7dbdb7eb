"""Issue 23 on the prompt-learning tables: the "not significantly worse than the best" marks (base-to-novel with its
per-seed HM and averages, cross-dataset with its target average), their rendering in Markdown, HTML and LaTeX, and
the per-cell intervals of prompt_cells.csv and Results.cells(), each checked against scipy called directly."""

from __future__ import annotations

import csv
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tests.test_report_prompt import b2n_pair, sections, tables, write_prompt_run
from vrbench.compare import Choice, Selection, compare_runs
from vrbench.errors import ConfigError
from vrbench.report import build_report, load_model
from vrbench.report.prompt import harmonic_mean
from vrbench.results import Results
from vrbench.store import ingest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (1, 2, 3)
# method -> dataset -> (base accuracies, novel accuracies) by seed; chosen so that every outcome occurs: a clearly
# worse cell, a close one, and Holm deciding between three methods.
B2N = {
    "maple": {"caltech101": ((90.0, 91.0, 92.0), (70.0, 72.0, 71.0)),
              "dtd": ((70.0, 71.0, 69.0), (50.0, 52.0, 51.0))},
    "cocoop": {"caltech101": ((89.5, 91.2, 91.5), (74.0, 75.0, 73.5)),
               "dtd": ((65.0, 66.3, 64.1), (55.0, 53.0, 56.0))},
    "coop": {"caltech101": ((85.0, 86.0, 86.5), (73.0, 74.5, 73.8)),
             "dtd": ((70.5, 70.0, 69.2), (40.0, 42.0, 41.0))},
}
# cross-dataset: method -> dataset -> accuracies by seed (imagenet is the source)
XD = {
    "maple": {"imagenet": (70.0, 70.5, 71.0), "caltech101": (93.0, 94.0, 93.5), "dtd": (45.0, 46.0, 44.0)},
    "cocoop": {"imagenet": (71.0, 71.2, 70.1), "caltech101": (92.0, 94.1, 93.3), "dtd": (41.0, 42.0, 40.5)},
    "coop": {"imagenet": (71.5, 71.7, 72.0), "caltech101": (90.0, 91.0, 89.0), "dtd": (44.0, 46.5, 44.2)},
}


def holm(p: list[float]) -> list[float]:
    """Holm's step-down adjustment, written out as in the textbook (sort, scale by m - i, running maximum)."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    adjusted, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def expected_marks(per_seed: dict[str, np.ndarray], shown: dict[str, float]) -> set[str]:
    """The methods not significantly worse than the one with the best shown value: one-sided paired t-tests
    (scipy.stats.ttest_rel) over the shared seeds, Holm-corrected across the column, alpha = 0.05."""
    best = max(shown, key=shown.__getitem__)
    others = [m for m in per_seed if m != best]
    p = [stats.ttest_rel(per_seed[best], per_seed[m], alternative="greater").pvalue for m in others]
    return {best} | {m for m, q in zip(others, holm(p), strict=True) if q >= 0.05}


def b2n_expected() -> dict[tuple[str, str], set[str]]:
    """(dataset or Average, column) -> the methods that must be bold, from B2N alone."""
    out = {}
    datasets = ("caltech101", "dtd")
    for dataset in (*datasets, "Average"):
        base, novel = {}, {}
        for method, per in B2N.items():
            if dataset == "Average":  # per seed: the plain mean over the datasets
                base[method] = np.mean([per[d][0] for d in datasets], axis=0)
                novel[method] = np.mean([per[d][1] for d in datasets], axis=0)
            else:
                base[method], novel[method] = np.array(per[dataset][0]), np.array(per[dataset][1])
        out[(dataset, "Base")] = expected_marks(base, {m: v.mean() for m, v in base.items()})
        out[(dataset, "Novel")] = expected_marks(novel, {m: v.mean() for m, v in novel.items()})
        hm_seeds = {m: 2 * base[m] * novel[m] / (base[m] + novel[m]) for m in base}
        hm_shown = {m: harmonic_mean(base[m].mean(), novel[m].mean()) for m in base}  # HM of the seed means
        out[(dataset, "HM")] = expected_marks(hm_seeds, hm_shown)
    return out


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prompt-stats") / "results"
    for method, per in B2N.items():
        for dataset, (base, novel) in per.items():
            for seed, b, n in zip(SEEDS, base, novel, strict=True):
                b2n_pair(root, method, dataset, seed, b, n)
    for method, per in XD.items():
        for seed_index, seed in enumerate(SEEDS):
            train = write_prompt_run(root, protocol="cross_dataset", method=method, dataset="imagenet", seed=seed,
                                     acc=per["imagenet"][seed_index])
            for target in ("caltech101", "dtd"):
                write_prompt_run(root, protocol="cross_dataset", method=method, dataset=target, seed=seed,
                                 acc=per[target][seed_index], train_run=train, source_dataset="imagenet")
    path = root / "vrbench.duckdb"
    ingest(root, path)
    return path


def model_marks(db: Path, protocol: str) -> dict[tuple[str, str], set[str]]:
    """(row name, column) -> the methods whose value the report model marks."""
    (section,) = [s for s in load_model(db).prompt_sections if s.protocol == protocol]
    (table,) = section.tables
    marks: dict[tuple[str, str], set[str]] = {}
    for row in table.rows:
        for column, value in row.values.items():
            marks.setdefault((row.name, column), set())
            if value.not_worse:
                marks[(row.name, column)].add(row.method)
    return marks


def test_base2novel_marks_match_scipy_paired_tests_with_holm(db: Path) -> None:
    expected = b2n_expected()
    assert model_marks(db, "base2novel") == expected
    # the data exercise both outcomes: columns with a close second, and columns where the others are worse
    assert {len(v) for v in expected.values()} == {1, 2}
    assert expected[("dtd", "Base")] == {"maple", "coop"}  # cocoop is 4.9 points behind on every seed


def test_transfer_marks_include_the_target_average(db: Path) -> None:
    marks = model_marks(db, "cross_dataset")
    for column in ("imagenet (source)", "caltech101", "dtd", "Average"):
        if column == "Average":  # per seed: the mean over the targets, never the source
            per_seed = {m: np.mean([per["caltech101"], per["dtd"]], axis=0) for m, per in XD.items()}
        else:
            per_seed = {m: np.array(per[column.split(" ")[0]]) for m, per in XD.items()}
        assert marks[("", column)] == expected_marks(per_seed, {m: v.mean() for m, v in per_seed.items()}), column


def test_every_format_bolds_the_marked_values(db: Path, tmp_path: Path) -> None:
    expected = b2n_expected()
    n_bold = sum(len(v) for v in expected.values())
    text = build_report(db, tmp_path / "md").read_text()
    part = sections(text)["Base-to-novel generalization"]
    (b2n,) = tables(part, bold=True)
    header = b2n[0]
    bold = {(cells[1], column, cells[0].split(" · ")[0]) for cells in b2n[2:]
            for column, cell in zip(header, cells, strict=True) if cell.startswith("**")}
    assert bold == {(d, c, m) for (d, c), methods in expected.items() for m in methods}
    assert "one-sided paired t-test" in part and "per-seed HM" in part  # the legend names the test and the HM rule

    html = build_report(db, tmp_path / "html", "html").read_text()
    b2n_html = html.split('id="protocol-base2novel"')[1].split("<h2")[0]
    assert b2n_html.count('class="num top"') == n_bold

    tex = build_report(db, tmp_path / "tex", "latex").read_text()
    b2n_tex = tex.split(r"\label{tab:vrbench-base2novel}")[1].split(r"\end{table}")[0]
    assert b2n_tex.count(r"\textbf{") == n_bold
    assert "paired t-test" in tex.split(r"\label{tab:vrbench-base2novel}")[0].rsplit(r"\caption{", 1)[1]


def test_prompt_cells_csv_carries_intervals_and_marks(db: Path, tmp_path: Path) -> None:
    build_report(db, tmp_path / "out")
    with open(tmp_path / "out" / "prompt_cells.csv", newline="") as handle:
        lines = list(csv.DictReader(handle))
    expected = b2n_expected()
    seen = 0
    for line in lines:
        if line["protocol"] != "base2novel":
            continue
        mark = line["method"] in expected[(line["row"], line["column"])]
        assert line["not_worse_than_best"] == str(int(mark))
        if line["row"] != "Average" and line["column"] != "HM":
            subsample = 0 if line["column"] == "Base" else 1
            values = B2N[line["method"]][line["row"]][subsample]
            low, high = stats.t.interval(0.95, len(values) - 1, loc=statistics.fmean(values),
                                         scale=stats.sem(values))
            assert float(line["ci_low"]) == pytest.approx(low, abs=1e-4)
            assert float(line["ci_high"]) == pytest.approx(high, abs=1e-4)
            seen += 1
        else:  # an HM or an average is not a mean over seeds: no interval of its own
            assert line["ci_low"] == line["ci_high"] == ""
    assert seen == 3 * 2 * 2


def test_results_cells_have_intervals_for_prompt_runs(db: Path) -> None:
    frame = Results(db.parent, refresh=False).cells(rule="final", protocol="base2novel")
    new = frame[(frame["method"] == "coop") & (frame["dataset"] == "dtd") & (frame["subsample"] == "new")]
    assert len(new) == 1
    values = B2N["coop"]["dtd"][1]
    low, high = stats.t.interval(0.95, 2, loc=statistics.fmean(values), scale=stats.sem(values))
    assert new["ci_low"].iloc[0] == pytest.approx(low) and new["ci_high"].iloc[0] == pytest.approx(high)


def test_partial_averages_and_single_seeds_are_not_marked(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for seed in SEEDS:  # maple has both datasets, cocoop (higher everywhere) only one: its average is partial
        b2n_pair(root, "maple", "caltech101", seed, 80.0 + seed, 70.0 + seed)
        b2n_pair(root, "maple", "dtd", seed, 60.0 + seed, 50.0 + seed)
        b2n_pair(root, "cocoop", "caltech101", seed, 95.0 + seed, 90.0 + seed)
    b2n_pair(root, "coop", "dtd", 1, 40.0, 30.0)  # one seed, far behind: untested, so never bold
    ingest(root, root / "vrbench.duckdb")
    (table,) = load_model(root / "vrbench.duckdb").prompt_sections[0].tables
    values = {(r.method, r.name): r.values for r in table.rows}
    assert values[("cocoop", "Average")]["HM"].over[0] == 1 and not values[("cocoop", "Average")]["HM"].not_worse
    assert all(v.not_worse for v in values[("maple", "Average")].values())  # the only full average: the best
    assert not any(v.not_worse for v in values[("coop", "dtd")].values())
    text = build_report(root / "vrbench.duckdb", tmp_path / "out").read_text()
    assert re.search(r"\| cocoop · clip_vit_b16 \| Average \| [^*|]+ \|", text)  # no bold in the partial average


# ------------------------------------------------------------------------------------------ vrbench compare


def vrbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from vrbench.cli import main; main()", *args], cwd=ROOT,
                          capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_compare_base2novel_novel_classes_json_against_scipy(db: Path) -> None:
    out = vrbench("compare", "maple", "cocoop", "--results", str(db.parent), "--protocol", "base2novel",
                  "--subsample", "novel", "--format", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert (data["protocol"], data["rule"], data["setting"]) == ("base2novel", "final",
                                                                 {"shots": 16, "subsample": "new"})
    assert set(data["overall"]) == {"mean_diff", "ci_low", "ci_high", "p_value", "prob_improvement"}
    means, improvements = [], []
    for dataset in ("caltech101", "dtd"):
        a, b = np.array(B2N["maple"][dataset][1]), np.array(B2N["cocoop"][dataset][1])
        low, high = stats.t.interval(0.95, 2, loc=(a - b).mean(), scale=stats.sem(a - b))
        entry = data["datasets"][dataset]
        assert entry["n"] == 3 and set(entry) == {"mean_diff", "ci_low", "ci_high", "n"}
        assert entry["mean_diff"] == pytest.approx((a - b).mean())
        assert (entry["ci_low"], entry["ci_high"]) == (pytest.approx(low), pytest.approx(high))
        means.append((a - b).mean())
        improvements.append(stats.mannwhitneyu(a, b).statistic / 9)
    assert data["overall"]["mean_diff"] == pytest.approx(np.mean(means))
    assert data["overall"]["p_value"] == pytest.approx(stats.wilcoxon(means).pvalue)
    assert data["overall"]["prob_improvement"] == pytest.approx(np.mean(improvements))
    assert data["unpaired_runs"] == {"a": 0, "b": 0}


def test_compare_says_which_settings_exist_when_the_choice_is_ambiguous(db: Path) -> None:
    out = vrbench("compare", "maple", "cocoop", "--results", str(db.parent), "--protocol", "base2novel")
    assert out.returncode != 0 and out.stdout == ""
    message = out.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "shots=16 subsample=base; shots=16 subsample=new" in message and "--subsample" in message
    with pytest.raises(ConfigError, match="both have runs of base2novel, cross_dataset: choose one with --protocol"):
        compare_runs(db, "maple", "cocoop")
    with pytest.raises(ConfigError, match="final rule"):
        compare_runs(db, "maple", "cocoop", "best_test", choice=Choice("cross_dataset"))
    with pytest.raises(ConfigError, match="maple has no finished fewshot run; it has base2novel, cross_dataset"):
        compare_runs(db, "maple", "coop", choice=Choice("fewshot"))


def test_compare_transfer_keeps_the_source_out_of_the_average(db: Path) -> None:
    result, selection = compare_runs(db, "maple", "coop", choice=Choice("cross_dataset"))
    assert selection.setting == {"shots": 16, "source_dataset": "imagenet"}
    assert [d.name for d in result.aside] == ["imagenet (source)"]
    assert [d.name for d in result.datasets] == ["caltech101", "dtd"]
    targets = [np.mean(np.subtract(XD["maple"][t], XD["coop"][t])) for t in ("caltech101", "dtd")]
    assert result.mean_diff == pytest.approx(np.mean(targets))  # as the papers' average: the targets only
    assert result.aside[0].mean_diff == pytest.approx(np.mean(np.subtract(XD["maple"]["imagenet"],
                                                                          XD["coop"]["imagenet"])))


def test_compare_fewshot_by_shots_with_a_training_free_method_and_unpaired_seeds(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for dataset, level in (("caltech101", 90.0), ("dtd", 50.0)):
        for seed in SEEDS:
            for shots in (4, 16):
                write_prompt_run(root, protocol="fewshot", method="coop", dataset=dataset, shots=shots, seed=seed,
                                 acc=level + shots / 4 + seed)
            write_prompt_run(root, protocol="fewshot", method="zeroshot", dataset=dataset, shots=None, seed=seed,
                             acc=level)
    write_prompt_run(root, protocol="fewshot", method="coop", dataset="dtd", shots=16, seed=9, acc=1.0)  # no partner
    ingest(root, root / "vrbench.duckdb")
    with pytest.raises(ConfigError, match=r"several fewshot settings \(shots=16; shots=4\): choose one with --shots"):
        compare_runs(root / "vrbench.duckdb", "coop", "zeroshot")
    result, selection = compare_runs(root / "vrbench.duckdb", "coop", "zeroshot", choice=Choice(shots=16))
    assert selection == Selection("fewshot", "final", {"shots": 16})
    assert [(d.name, d.n, round(d.mean_diff, 6)) for d in result.datasets] == [("caltech101", 3, 6.0),
                                                                              ("dtd", 3, 6.0)]
    assert result.unpaired == {"a": 1, "b": 0}


def test_prompt_marks_cost_one_vectorised_call_per_table(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """However many runs and values, each prompt table's marks are one mark_not_worse call over a numpy array."""
    import vrbench.report.significance as significance

    shapes: list[tuple[int, ...]] = []
    real = significance.mark_not_worse

    def counting(scores: np.ndarray, *args: object, **kwargs: object) -> object:
        shapes.append(scores.shape)
        return real(scores, *args, **kwargs)

    monkeypatch.setattr(significance, "mark_not_worse", counting)
    model = load_model(db)
    n_tables = sum(len(s.tables) for s in model.prompt_sections)
    assert n_tables == 2 and len(shapes) == n_tables + len(model.boards)
    # base-to-novel: 3 methods x (2 datasets + Average) x 3 columns x 3 seeds
    assert (3, 9, 3) in shapes


def test_compare_base2novel_hm_pairs_the_per_seed_harmonic_means(db: Path) -> None:
    result, selection = compare_runs(db, "maple", "coop", choice=Choice("base2novel", subsample="hm"))
    assert selection.setting == {"shots": 16, "subsample": "hm"}
    for diff in result.datasets:
        (base_a, novel_a), (base_b, novel_b) = B2N["maple"][diff.name], B2N["coop"][diff.name]
        hm_a = [2 * b * n / (b + n) for b, n in zip(base_a, novel_a, strict=True)]
        hm_b = [2 * b * n / (b + n) for b, n in zip(base_b, novel_b, strict=True)]
        assert diff.n == 3 and diff.mean_diff == pytest.approx(np.mean(np.subtract(hm_a, hm_b)))
        low, high = stats.t.interval(0.95, 2, loc=np.mean(np.subtract(hm_a, hm_b)),
                                     scale=stats.sem(np.subtract(hm_a, hm_b)))
        assert (diff.ci_low, diff.ci_high) == (pytest.approx(low), pytest.approx(high))
