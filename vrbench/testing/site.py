"""A results directory for site tests: the smoke suite's runs (vrbench.testing.runs), plus one failed run, one
run that arrived in a bundle (provenance.json) and one job with a second result (a conflict, trained under another
shared-border lever), laid out as `vrbench import` lays them out (vrbench.share.layout); and, for the published
table pages, a few finished jobs of suites/cvpr23.yaml (ILM-VP's main table: their configs are the suite's)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from vrbench.share.layout import PROVENANCE, alternates_root, result_key_of
from vrbench.store.rundir import ENV, ERROR, RESULT, atomic_write_json, now_iso, run_dir, write_config
from vrbench.testing.runs import write_suite_results

SUITES = Path(__file__).resolve().parents[2] / "suites"
SMOKE = SUITES / "smoke.yaml"
CVPR23 = SUITES / "cvpr23.yaml"
# The cvpr23 jobs given a result: ILM-VP and FLM-VP on ResNet-18, CIFAR10 and SVHN, seeds 0-2 (12 runs).
PAPER_JOBS = {"input": "padding", "mapping": ("ilm", "flm"), "backbone": "resnet18", "dataset": ("cifar10", "svhn")}
FAILED_ID = "fa11ed0000000001"


@dataclass(frozen=True)
class SiteResults:
    results: Path
    run_ids: list[str]  # the smoke suite's runs
    imported: str  # a run with provenance.json
    conflict: str  # a run with a second result in alternates/
    alternate_key: str
    paper_run_ids: list[str]  # finished jobs of suites/cvpr23.yaml


def lever_env(shared_border: str, hostname: str = "node1", cpu_capability: str = "AVX512") -> dict:
    """An env.json in the worker's format (docs/results-format.md), one training session, with its levers."""
    session = {"session": 1, "started_at": "2026-12-01T09:00:00+00:00", "epochs": [0, 3],
               "fold_batchnorm": "on", "fuse_activations": "on", "shared_border": shared_border,
               "folded_batchnorm": 49, "fused_activations": 33, "frozen_chains": 15,
               "shared_border_wrapped": True, "shared_border_batches": 19 if shared_border == "on" else 0,
               "requested": {"fold_batchnorm": True, "fuse_activations": True,
                             "shared_border": shared_border == "on"}}
    return {"vrbench_version": "0.1.0", "torch_version": "2.14.1", "python_version": "3.11.7", "device": "cpu",
            "device_name": "test CPU", "cpu_capability": cpu_capability, "precision": "fp32", "threads": 2,
            "hostname": hostname, "platform": "Linux",
            "levers": {"fold_batchnorm": "on", "fuse_activations": "on", "shared_border": shared_border},
            "sessions": [session]}


def _paper_job(job) -> bool:
    c = job.config
    return all(c.get(key) in (wanted if isinstance(wanted, tuple) else (wanted,))
               for key, wanted in PAPER_JOBS.items())


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
    atomic_write_json(source / ENV, lever_env("off"))
    staging = results / "alternate-staging"
    shutil.copytree(source, staging)
    result = json.loads((staging / RESULT).read_text())
    result["final_acc"] = round(result["final_acc"] - 1.5, 2)
    atomic_write_json(staging / RESULT, result)
    atomic_write_json(staging / ENV, lever_env("on", hostname="cluster-b", cpu_capability="AVX2"))
    atomic_write_json(staging / PROVENANCE, {"bundle": "lab-b.vrbundle", "source_host": "cluster-b",
                                             "imported_at": "2026-12-02T11:00:00+00:00"})
    key = result_key_of(staging)
    target = alternates_root(results) / conflict / key
    target.parent.mkdir(parents=True)
    staging.rename(target)
    paper_run_ids = write_suite_results(CVPR23, results, rng_seed=1, select=_paper_job)
    return SiteResults(results, run_ids, imported, conflict, key, paper_run_ids)
