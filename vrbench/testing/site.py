"""A results directory for site tests: the smoke suite's runs (vrbench.testing.runs), plus one failed run, one
run that arrived in a bundle (provenance.json) and one job with a second result (a conflict), laid out as
`vrbench import` lays them out (vrbench.share.layout)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from vrbench.share.layout import PROVENANCE, alternates_root, result_key_of
from vrbench.store.rundir import ENV, ERROR, RESULT, atomic_write_json, now_iso, run_dir, write_config
from vrbench.testing.runs import write_suite_results

SMOKE = Path(__file__).resolve().parents[2] / "suites" / "smoke.yaml"
FAILED_ID = "fa11ed0000000001"


@dataclass(frozen=True)
class SiteResults:
    results: Path
    run_ids: list[str]  # the smoke suite's runs
    imported: str  # a run with provenance.json
    conflict: str  # a run with a second result in alternates/
    alternate_key: str


def write_site_results(results: Path) -> SiteResults:
    run_ids = write_suite_results(SMOKE, results)
    directory = run_dir(results, FAILED_ID)
    config = {"protocol": "vr", "input": "padding", "mapping": "ilm", "backbone": "efficientnet_lite0",
              "dataset": "digits", "seed": 99, "epochs": 3}
    write_config(directory, FAILED_ID, "padding+ilm", config, runtime={})
    atomic_write_json(directory / ERROR, {"error_type": "RuntimeError", "message": "out of <memory> & gone",
                                          "traceback": "Traceback ...", "failed_at": now_iso()})
    imported = run_ids[1]
    atomic_write_json(run_dir(results, imported) / PROVENANCE, {
        "bundle": "lab-b.vrbundle", "bundle_sha256": "ab" * 32, "source_host": "cluster-b",
        "exported_at": "2026-12-01T10:00:00+00:00", "imported_at": "2026-12-02T11:00:00+00:00"})
    conflict = run_ids[0]
    source = run_dir(results, conflict)
    staging = results / "alternate-staging"
    shutil.copytree(source, staging)
    result = json.loads((staging / RESULT).read_text())
    result["final_acc"] = round(result["final_acc"] - 1.5, 2)
    atomic_write_json(staging / RESULT, result)
    env = json.loads((staging / ENV).read_text())
    atomic_write_json(staging / ENV, {**env, "hostname": "cluster-b", "cpu_capability": "AVX2"})
    atomic_write_json(staging / PROVENANCE, {"bundle": "lab-b.vrbundle", "source_host": "cluster-b",
                                             "imported_at": "2026-12-02T11:00:00+00:00"})
    key = result_key_of(staging)
    target = alternates_root(results) / conflict / key
    target.parent.mkdir(parents=True)
    staging.rename(target)
    return SiteResults(results, run_ids, imported, conflict, key)
