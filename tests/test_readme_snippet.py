"""The README's notebook block and its check (.ci/readme_snippet.py): the block is found and runnable, its numbers
are compared exactly on the README's machine and against vrbench's own report and index elsewhere."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.test_report import write_run
from vrbench.store import ingest

REPO = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("readme_snippet", REPO / ".ci" / "readme_snippet.py")
snippet = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(snippet)

SNIPPET = '''from vrbench.results import Results

res = Results("results")
cells = res.cells(rule="best_test")
cells.pivot_table(index="method", columns="dataset", values="mean").round({digits})
{cells_output}
curves = res.epochs(dataset="digits")
curves.groupby(["method", "epoch"])["test_acc"].mean().unstack("epoch").round(1)
# epoch           1     2
# method
# padding+blm  30.0  62.0
# padding+ilm  20.0  40.5
res.runs(status=None)'''
CELLS_OUTPUT = """# dataset      digits
# method
# padding+blm    63.0
# padding+ilm    41.5"""


def readme(tmp_path: Path, machine: str, cells_output: str = CELLS_OUTPUT, digits: int = 1) -> Path:
    path = tmp_path / "README.md"
    path.write_text(f"# x\n\n<!-- readme-snippet: outputs from {machine} -->\n```python\n"
                    + SNIPPET.format(cells_output=cells_output, digits=digits) + "\n```\n")
    return path


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """Two methods, two seeds, two epochs each, on digits: runs as the worker writes them."""
    root = tmp_path / "results"
    curves = {"b0": ("padding+blm", 0, [30.0, 62.0], 62.0), "b1": ("padding+blm", 1, [30.0, 62.0], 64.0),
              "i0": ("padding+ilm", 0, [20.0, 40.0], 41.0), "i1": ("padding+ilm", 1, [20.0, 41.0], 42.0)}
    for run_id, (method, seed, accs, best) in curves.items():
        write_run(root, run_id, method=method, dataset="digits", seed=seed, accs=(accs[-1], best, None))
        (root / "runs" / run_id / "metrics.jsonl").write_text("".join(
            json.dumps({"epoch": e, "test_acc": a, "train_loss": 1.0, "train_acc": 50.0, "lr": 0.01, "seconds": 1.0})
            + "\n" for e, a in enumerate(accs, start=1)))
    ingest(root, root / "vrbench.duckdb")
    return root


def test_the_readme_has_a_marked_runnable_snippet_with_outputs_and_a_machine() -> None:
    machine, code = snippet.extract((REPO / "README.md").read_text(encoding="utf-8"))
    assert {"device_name", "cpu_capability", "torch_version"} <= set(machine)
    shown = snippet.shown_outputs(code)
    assert len(shown) >= 2 and all(snippet.numbers(output) for _, output in shown)
    assert snippet.RESULTS_LITERAL in code
    compile(code, "README.md", "exec")


def test_exact_mode_on_the_readmes_machine(results: Path, tmp_path: Path, capsys) -> None:
    same = 'device="cpu" precision="fp32" threads="2"'
    assert snippet.main([str(results), "--readme", str(readme(tmp_path, same))]) == 0
    assert "exact mode" in capsys.readouterr().out
    stale = CELLS_OUTPUT.replace("63.0", "69.0")  # a README left behind by a code change
    assert snippet.main([str(results), "--readme", str(readme(tmp_path, same, stale))]) == 1
    assert "the README shows" in capsys.readouterr().err


def test_consistency_mode_on_another_machine(results: Path, tmp_path: Path, capsys) -> None:
    other = 'device_name="AMD EPYC" cpu_capability="AVX2"'
    stale = CELLS_OUTPUT.replace("63.0", "69.0")  # other numbers are expected on another CPU ...
    assert snippet.main([str(results), "--readme", str(readme(tmp_path, other, stale))]) == 0
    out = capsys.readouterr().out
    assert "consistency mode" in out and "device_name is None" in out
    # ... but the block must still print what the report and the index say (here it rounds to whole numbers)
    assert snippet.main([str(results), "--readme", str(readme(tmp_path, other, digits=0))]) == 1
    assert "vrbench's own numbers are [41.5]" in capsys.readouterr().err


def test_the_readmes_report_tables_are_compared_too(results: Path) -> None:
    header = "| Method · backbone | digits | average |\n|:---|---:|---:|\n"
    final = (header + "| padding+blm · resnet18 | **62.0 ± 0.0 (n=2)** | 62.0 |\n"
             "| padding+ilm · resnet18 | 40.5 ± 0.7 (n=2) | 40.5 |")
    best = (header + "| padding+blm · resnet18 | **63.0 ± 1.4 (n=2)** | 63.0 |\n"
            "| padding+ilm · resnet18 | 41.5 ± 0.7 (n=2) | 41.5 |")
    readme = (f"<!-- readme-report: vrbench report -->\n```\nwrote x\n\nLeaderboard: final\n{final}\n\n"
              f"Leaderboard: best_test\n{best}\n```\n")
    assert snippet.report_problems(readme, results) == []
    stale = readme.replace("| 41.5 |", "| 42.5 |")
    problems = snippet.report_problems(stale, results)
    assert len(problems) == 1 and "README '| padding+ilm · resnet18 | 41.5 ± 0.7 (n=2) | 42.5 |'" in problems[0]


def test_a_dotted_machine_field_reads_a_nested_env_value(results: Path) -> None:
    env = results / "runs" / "b0" / "env.json"
    env.write_text(json.dumps({**json.loads(env.read_text()), "levers": {"shared_border": "off"}}))
    assert snippet.machine_matches(results, {"levers.shared_border": "off"})[0] is False  # b1, i0, i1 lack it
    for run in ("b1", "i0", "i1"):
        other = results / "runs" / run / "env.json"
        other.write_text(json.dumps({**json.loads(other.read_text()), "levers": {"shared_border": "off"}}))
    assert snippet.machine_matches(results, {"levers.shared_border": "off"})[0] is True
    assert snippet.machine_matches(results, {"levers.shared_border": "on"})[0] is False
    assert snippet.MACHINE_FIELD.findall('levers.shared_border="off" threads="2"') == [
        ("levers.shared_border", "off"), ("threads", "2")]
