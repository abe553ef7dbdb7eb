"""A run directory that is a symbolic link out of the results root is refused, never followed (issue 25, item 8).

Before, `status` read the linked directory as an unfinished job and `run` claimed it and wrote through the link.
Now every reader and writer refuses it with one clear line, and nothing behind the link changes.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from vrbench.errors import ResultsError
from vrbench.runner.common import RunSummary, pending_jobs
from vrbench.store.db import DB_NAME, ingest
from vrbench.store.rundir import job_state, run_dir, try_claim, write_config
from vrbench.suite import load_suite
from vrbench.testing.runs import learning_curve, write_finished_run
from vrbench.worker import main as worker_main

SMOKE = Path(__file__).resolve().parents[1] / "suites" / "smoke.yaml"


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def linked(tmp_path: Path) -> tuple[Path, Path, object]:
    """results/runs/<id of smoke job 0> -> a directory outside the results root holding that job's config."""
    job = load_suite(SMOKE).jobs[0]
    results = tmp_path / "results"
    outside = tmp_path / "elsewhere" / job.run_id
    write_config(outside, job.run_id, job.method, job.config, runtime={})
    (results / "runs").mkdir(parents=True)
    os.symlink(outside, results / "runs" / job.run_id)
    return results, outside, job


def test_readers_and_writers_refuse_the_link(linked) -> None:
    results, outside, job = linked
    before = _digest(outside.parent)
    link = results / "runs" / job.run_id
    for action in (lambda: run_dir(results, job.run_id), lambda: job_state(link), lambda: try_claim(link),
                   lambda: write_config(link, job.run_id, job.method, job.config, {}),
                   lambda: pending_jobs([job], results, lambda *a: None, RunSummary())):
        with pytest.raises(ResultsError, match="symbolic link"):
            action()
    assert worker_main([str(link)]) == 2
    assert _digest(outside.parent) == before


@pytest.mark.parametrize("command", [["status"], ["run", "--no-download"], ["run", "--download"]])
def test_cli_refuses_with_one_line_and_writes_nothing(linked, command: list[str]) -> None:
    results, outside, job = linked
    before = _digest(outside.parent)
    args = [command[0], str(SMOKE), "--results", str(results)] + (["--download"] if "--download" in command else [])
    out = subprocess.run([sys.executable, "-m", "vrbench.cli", *args], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "COLUMNS": "400"})
    assert out.returncode == 2, out.stdout + out.stderr
    assert "symbolic link" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert _digest(outside.parent) == before
    assert sorted(p.name for p in (results / "runs").iterdir()) == [job.run_id]  # no other job was started


def test_ingestion_does_not_follow_the_link(tmp_path: Path) -> None:
    jobs = load_suite(SMOKE).jobs[:2]
    results, outside = tmp_path / "results", tmp_path / "elsewhere"
    rng = random.Random(0)
    write_finished_run(results, jobs[0].run_id, jobs[0].method, jobs[0].config, learning_curve(3, 40.0, rng))
    write_finished_run(outside, jobs[1].run_id, jobs[1].method, jobs[1].config, learning_curve(3, 40.0, rng))
    os.symlink(outside / "runs" / jobs[1].run_id, results / "runs" / jobs[1].run_id)
    stats = ingest(results, results / DB_NAME)
    assert stats.done == 1
    assert [p.path.name for p in stats.problems] == [jobs[1].run_id]
    assert "symbolic link" in stats.problems[0].reason
