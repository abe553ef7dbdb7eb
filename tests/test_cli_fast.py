"""Fast tests of the real `vrbench` console script: help, ls, dry-run, status, error messages, no torch import.

Every command runs in its own subprocess, as a user would run it; the processes are started together so the
file stays fast on two cores.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vrbench.cost import job_tmacs
from vrbench.datasets.space import human_bytes
from vrbench.footprint import job_footprint
from vrbench.suite import load_suite

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "suites" / "smoke.yaml"
VRBENCH = Path(sys.executable).parent / "vrbench"  # the installed console script
RUN_ID = re.compile(r"\b[0-9a-f]{16}\b")
WIDE = {"COLUMNS": "250"}
NARROW = {"COLUMNS": "80"}

BAD_YAML = "name: bad\ngrid:\n\tinput: [padding]\n"  # a tab at line 3
BAD_NAME = textwrap.dedent("""\
    name: bad
    grid:
      input: [padding]
      mapping: [rlm, ilmm]
      backbone: [efficientnet_lite0]
      dataset: [digits]
      seed: [0]
""")
BAD_PARAM = BAD_NAME.replace("[rlm, ilmm]", "[ilm]") + "defaults:\n  epoch: 3\n"  # the longest message: all params

# Runs the CLI in-process several times and reports, after each command, whether torch has been imported.
WRAPPER = textwrap.dedent("""\
    import contextlib, io, json, sys
    from vrbench.cli import main
    report = []
    for args in json.loads(sys.argv[1]):
        sys.argv = ["vrbench", *args]
        out = io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out):
            try:
                main()
            except SystemExit as exc:
                code = exc.code or 0
        torch = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        report.append({"args": args, "code": code, "out": out.getvalue(), "torch": torch[:5]})
    print(json.dumps(report))
""")
CHEAP = [["--help"], ["ls", "methods"], ["ls", "backbones"], ["ls", "datasets"], ["ls", "suites"],
         ["run", str(SMOKE), "--dry-run", "--results", "{results}"], ["data", "cache", "ls"],
         ["status", str(SMOKE), "--results", "{results}"]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess]:
    """Start every CLI invocation of this file at once, then wait for all of them."""
    assert VRBENCH.is_file(), f"the console script {VRBENCH} is not installed"
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "bad.yaml").write_text(BAD_YAML)
    (tmp / "bad_name.yaml").write_text(BAD_NAME)
    (tmp / "bad_param.yaml").write_text(BAD_PARAM)
    results = tmp / "results"
    base_env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    cheap = [[arg.replace("{results}", str(results)) for arg in args] for args in CHEAP]
    commands = {
        "help": ([str(VRBENCH), "--help"], WIDE, REPO),
        # COLUMNS=80 as in a CI log: piped tables must still show whole run ids.
        "dry_run": ([str(VRBENCH), "run", str(SMOKE), "--dry-run", "--results", str(results)], NARROW, REPO),
        "status": ([str(VRBENCH), "status", str(SMOKE), "--results", str(results)], NARROW, REPO),
        "bad_yaml_run": ([str(VRBENCH), "run", "bad.yaml", "--dry-run"], NARROW, tmp),
        "bad_name_run": ([str(VRBENCH), "run", "bad_name.yaml"], NARROW, tmp),
        "bad_param_status": ([str(VRBENCH), "status", str(tmp / "bad_param.yaml")], NARROW, tmp),
        "missing_suite": ([str(VRBENCH), "status", "nope.yaml"], NARROW, REPO),
        "wrapper": ([sys.executable, "-c", WRAPPER, json.dumps(cheap)], WIDE, REPO),
    }
    processes = {
        name: subprocess.Popen(argv, cwd=cwd, env={**base_env, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        for name, (argv, env, cwd) in commands.items()
    }
    done = {}
    for name, process in processes.items():
        out, err = process.communicate(timeout=120)
        done[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    done["_results"] = results  # type: ignore[assignment]
    return done


def test_help_lists_the_commands(runs):
    help_ = runs["help"]
    assert help_.returncode == 0, help_.stderr
    assert "Usage: vrbench" in help_.stdout
    for command in ("run", "status", "report", "collect", "ls"):
        assert re.search(rf"│ {command}\s", help_.stdout), command


def test_dry_run_prints_the_jobs_load_suite_computes(runs):
    dry = runs["dry_run"]
    assert dry.returncode == 0, dry.stderr
    expected = load_suite(SMOKE).jobs
    assert f"smoke: {len(expected)} jobs" in dry.stdout
    assert RUN_ID.findall(dry.stdout) == [job.run_id for job in expected]
    for job in expected:
        row = next(line for line in dry.stdout.splitlines() if job.run_id in line)
        cells = [cell.strip() for cell in row.strip("│ ").split("│")]
        c = job.config
        assert cells[:8] == [job.run_id, f"{c['input']}+{c['mapping']}", c["backbone"], c["dataset"],
                             str(c["seed"]), str(c["epochs"]), f"{c['lr']:g}", str(c["batch_size"])]
        assert float(cells[8]) == pytest.approx(job_tmacs(c), abs=0.01)  # the estimated cost column
        needs = job_footprint(c)  # digits is held in memory: no decoded-image cache
        assert cells[9:] == [human_bytes(needs.host), "-", human_bytes(needs.gpu)]
    assert "estimated" in dry.stdout and "GPU-hours" in dry.stdout
    assert "decoded-image cache 0 B on disk in all" in dry.stdout and "host memory" in dry.stdout


def test_dry_run_runs_nothing(runs):
    assert runs["dry_run"].returncode == 0
    results: Path = runs["_results"]  # type: ignore[assignment]
    assert not (results / "runs").exists()


def test_status_on_an_empty_results_dir_lists_every_job_as_pending(runs):
    status = runs["status"]
    assert status.returncode == 0, status.stderr
    jobs = load_suite(SMOKE).jobs
    rows = [line for line in status.stdout.splitlines() if RUN_ID.search(line)]
    assert [RUN_ID.search(row).group(0) for row in rows] == [job.run_id for job in jobs]
    assert all(" pending " in row for row in rows)
    assert status.stdout.rstrip().endswith(f"pending: {len(jobs)}")


def test_ls_lists_methods_backbones_datasets_and_suites(runs):
    report = {" ".join(entry["args"][:2]): entry for entry in json.loads(runs["wrapper"].stdout)}
    assert all(entry["code"] == 0 for entry in report.values()), report
    methods = report["ls methods"]["out"]
    for name in ("padding", "rlm", "flm", "ilm", "blm", "blmpp", "topk_ratio=0.15"):
        assert name in methods, name
    backbones = report["ls backbones"]["out"]
    for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "resnet18", "resnet50"):
        assert name in backbones, name
    datasets = report["ls datasets"]["out"]
    assert re.search(r"digits\s+│ 10\s+│ 1437\s+│ 360\s", datasets)
    assert re.search(r"cifar10\s+│ 10\s+│ 50000\s+│ 10000\s", datasets)
    shipped = sorted(p.name for p in (REPO / "suites").glob("*.yaml"))
    assert shipped
    for name in shipped:
        assert f"suites/{name}" in report["ls suites"]["out"]


def test_help_ls_status_dry_run_and_cache_ls_do_not_import_torch(runs):
    wrapper = runs["wrapper"]
    assert wrapper.returncode == 0, wrapper.stderr
    report = json.loads(wrapper.stdout)
    assert [entry["args"][:2] for entry in report] == [args[:2] for args in CHEAP]
    for entry in report:
        assert entry["torch"] == [], f"`vrbench {' '.join(entry['args'])}` imported torch"
    assert "pending" in report[-1]["out"]  # the status command really ran


@pytest.mark.parametrize(("name", "location"), [("bad_yaml_run", "bad.yaml:3:1: malformed YAML"),
                                                ("bad_name_run", "bad_name.yaml:4: unknown mapping 'ilmm'. "
                                                                 "Did you mean 'ilm'?"),
                                                ("bad_param_status", "{tmp}/bad_param.yaml:9: unknown hyperparameter "
                                                                     "'epoch'. Did you mean 'epochs'? Known")])
def test_a_bad_suite_exits_2_with_one_error_line_and_no_traceback(runs, name, location):
    result = runs[name]
    location = location.replace("{tmp}", str(runs["_results"].parent))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {location}"), lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""


def test_a_missing_suite_file_is_a_one_line_error(runs):
    result = runs["missing_suite"]
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: suite file 'nope.yaml' does not exist. Did you mean")
    assert "Suites in ./suites: " in result.stderr and "Traceback" not in result.stderr


def test_dry_run_piped_with_80_columns_still_shows_full_run_ids(runs):
    # CI logs and `| grep` are 80 columns by default; the ids name the run directories, so they must not be cut.
    dry = runs["dry_run"]
    assert dry.returncode == 0, dry.stderr
    assert RUN_ID.findall(dry.stdout) == [job.run_id for job in load_suite(SMOKE).jobs]
    assert "…" not in dry.stdout
