"""Tests for vrbench.jobs: canonical JSON, the content-hash run id and JobSpec."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from vrbench.jobs import RUN_ID_LENGTH, JobSpec, canonical_json, make_job, run_id_of

CONFIG = {
    "protocol": "vr", "input": "padding", "mapping": "ilm", "backbone": "efficientnet_lite0", "dataset": "digits",
    "seed": 0, "epochs": 3, "lr": 0.01, "batch_size": 32, "subset": {"train": 400, "test": None},
    "milestones": [0.5, 0.72], "versions": {"engine": 1, "input": 1, "mapping": 1},
}
# Computed once from CONFIG with the hashing scheme of docs/results-format.md (first 16 hex digits of the sha256
# of the key-sorted, whitespace-free JSON). If this changes, every existing results directory is orphaned.
GOLDEN_RUN_ID = "7d64104a22fea310"
GOLDEN_CANONICAL = (
    '{"backbone":"efficientnet_lite0","batch_size":32,"dataset":"digits","epochs":3,"input":"padding","lr":0.01,'
    '"mapping":"ilm","milestones":[0.5,0.72],"protocol":"vr","seed":0,"subset":{"test":null,"train":400},'
    '"versions":{"engine":1,"input":1,"mapping":1}}'
)


def test_golden_run_id():
    assert canonical_json(CONFIG) == GOLDEN_CANONICAL
    assert run_id_of(CONFIG) == GOLDEN_RUN_ID
    assert make_job(CONFIG, ["final"]).run_id == GOLDEN_RUN_ID


def test_run_id_is_lowercase_hex_of_the_documented_length():
    run_id = run_id_of(CONFIG)
    assert len(run_id) == RUN_ID_LENGTH == 16
    assert set(run_id) <= set("0123456789abcdef")


def test_run_id_ignores_key_order_at_every_level():
    reordered = {key: CONFIG[key] for key in reversed(list(CONFIG))}
    reordered["subset"] = {"test": None, "train": 400}
    reordered["versions"] = {"mapping": 1, "input": 1, "engine": 1}
    assert list(reordered) != list(CONFIG)
    assert run_id_of(reordered) == run_id_of(CONFIG)
    assert canonical_json(reordered) == canonical_json(CONFIG)


def test_run_id_is_the_same_in_another_process():
    code = ("import json, sys; from vrbench.jobs import run_id_of; "
            "print(run_id_of(json.loads(sys.stdin.read())))")
    # Another interpreter with a different hash seed: nothing may depend on dict or set iteration order.
    for seed in ("0", "12345"):
        out = subprocess.run([sys.executable, "-c", code], input=json.dumps(CONFIG), capture_output=True,
                             text=True, check=True, timeout=60, env={"PYTHONHASHSEED": seed, "PATH": ""})
        assert out.stdout.strip() == run_id_of(CONFIG)


def _changed(path: tuple, value) -> dict:
    config = copy.deepcopy(CONFIG)
    target = config
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return config


@pytest.mark.parametrize(
    ("path", "value"),
    [(("protocol",), "fewshot"), (("input",), "full"), (("mapping",), "blm"), (("backbone",), "resnet18"),
     (("dataset",), "cifar10"), (("seed",), 1), (("epochs",), 4), (("lr",), 0.02), (("batch_size",), 64),
     (("subset", "train"), 401), (("subset", "test"), 10), (("milestones",), [0.5]),
     (("versions", "engine"), 2), (("versions", "input"), 2), (("versions", "mapping"), 2)],
)
def test_changing_any_hashed_value_changes_the_run_id(path, value):
    assert run_id_of(_changed(path, value)) != GOLDEN_RUN_ID


def test_adding_or_removing_a_key_changes_the_run_id():
    assert run_id_of({**CONFIG, "topk_ratio": 0.15}) != GOLDEN_RUN_ID
    assert run_id_of({k: v for k, v in CONFIG.items() if k != "subset"}) != GOLDEN_RUN_ID
    assert run_id_of({**CONFIG, "subset": None}) != GOLDEN_RUN_ID


def test_int_and_float_values_hash_differently_at_this_level():
    # jobs.py hashes exactly what it is given; vrbench.suite normalises lr (and every float setting) with
    # float(), so a suite's `lr: 1` and `lr: 1.0` are one job (tested in test_suite.py).
    assert canonical_json({"lr": 1}) == '{"lr":1}'
    assert canonical_json({"lr": 1.0}) == '{"lr":1.0}'
    assert run_id_of({**CONFIG, "lr": 1}) != run_id_of({**CONFIG, "lr": 1.0})
    assert run_id_of({**CONFIG, "lr": 0.01}) == run_id_of({**CONFIG, "lr": 1e-2})


def test_canonical_json_refuses_nan_and_escapes_non_ascii():
    with pytest.raises(ValueError):
        canonical_json({"lr": float("nan")})
    assert canonical_json({"name": "é"}) == '{"name":"\\u00e9"}'


def test_make_job_stores_exactly_what_was_hashed():
    config = {**CONFIG, "milestones": (0.5, 0.72)}  # a tuple becomes a list in JSON
    job = make_job(config, ["final", "best_test"])
    assert job.config["milestones"] == [0.5, 0.72]
    assert job.run_id == GOLDEN_RUN_ID == run_id_of(job.config)
    assert job.selection == ["final", "best_test"]
    config["epochs"] = 99  # the job holds its own copy
    assert job.config["epochs"] == 3


def test_selection_is_not_part_of_the_run_id():
    assert make_job(CONFIG, ["final"]).run_id == make_job(CONFIG, ["final", "best_test", "best_val"]).run_id


def test_jobspec_method_and_label():
    job = make_job({**CONFIG, "mapping": "blmpp", "seed": 2}, [])
    assert job.method == "padding+blmpp"
    assert job.label() == "padding+blmpp efficientnet_lite0 digits seed=2"
    assert JobSpec("0" * 16, {"input": "full", "mapping": "fc", "backbone": "b", "dataset": "d", "seed": 0}).method \
        == "full+fc"
