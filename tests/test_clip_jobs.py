"""CLIP jobs through the real CLI and worker: cached frozen features, evaluation jobs, kill-and-resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import run_cli, run_killed_after_first_checkpoint
from vrbench.suite import load_suite


def write_suite(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def result_of(results: Path, run_id: str) -> dict:
    return json.loads((results / "runs" / run_id / "result.json").read_text())


ZERO_SHOT = """
name: zs
protocol: fewshot
grid: {method: [zeroshot, zeroshot_ensemble], backbone: clip_tiny, dataset: digits, seed: 1}
defaults: {subset: {test: 120}, test_batch_size: 50}
"""


def test_zero_shot_tests_on_cached_image_features_with_the_same_accuracy(tmp_path: Path) -> None:
    from vrbench.clip.encoders import PromptedCLIP
    from vrbench.clip.methods import METHODS
    from vrbench.clip.models import get_clip_tokenizer, load_clip
    from vrbench.engine.clip_data import ClipImageInput, load_prompt_data

    suite = write_suite(tmp_path, ZERO_SHOT)
    results = tmp_path / "results"
    run = run_cli("run", str(suite), "--results", str(results), "--threads", "1", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    cache = results / "cache" / "features"
    assert len(list((cache / "image").glob("*.pt"))) == 1  # two methods, one frozen encoding of the test set
    assert len(list((cache / "text").glob("*.pt"))) == 2  # 1 template, and 7 + 1 templates

    jobs = load_suite(suite).jobs
    clip = PromptedCLIP(load_clip("clip_tiny"))
    tokenizer = get_clip_tokenizer("clip_tiny")
    prep = ClipImageInput(32, (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
    data = load_prompt_data(jobs[0].config, None, 32, False, "clip", needs_train=False)
    with torch.no_grad():
        direct = clip.encode_image(prep.preprocess(data.test.images.float() / 255, train=False))
    (entry,) = (cache / "image").glob("*.pt")
    assert torch.allclose(torch.load(entry, weights_only=True)["features"], direct, atol=1e-5)
    for job in jobs:  # the uncached forward pass over the same images gives the same predictions
        method = METHODS[job.config["method"]](clip, tokenizer, list(data.test.classes), {}, "digits").eval()
        with torch.no_grad():
            logits = method(prep.preprocess(data.test.images.float() / 255, train=False))
        correct = int((logits.argmax(1) == data.test.labels).sum())
        assert result_of(results, job.run_id)["final_acc"] == 100.0 * correct / len(data.test)


EVAL_AFTER_FAILURE = """
name: dep
protocol: base2novel
grid: {method: coop, backbone: clip_tiny, dataset: digits, shots: 2, seed: 1}
defaults: {epochs: 1, subset: {test: 40}, n_ctx: 99}
"""


def test_an_evaluation_job_whose_training_run_failed_fails_with_that_reason(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, EVAL_AFTER_FAILURE)  # n_ctx 99 + class tokens overflow the 77-token context
    results = tmp_path / "results"
    run = run_cli("run", str(suite), "--results", str(results), "--threads", "1", cwd=tmp_path)
    assert run.returncode == 1
    train, evaluation = load_suite(suite).jobs
    assert (results / "runs" / train.run_id / "error.json").exists()
    error = json.loads((results / "runs" / evaluation.run_id / "error.json").read_text())
    assert error["error_type"] == "DependencyFailed" and train.run_id in error["message"]


PROMPTSRC_ONE_JOB = """
name: psrc
protocol: fewshot
grid: {method: promptsrc, backbone: clip_tiny, dataset: digits, shots: 4, seed: 1}
defaults: {epochs: 4, subset: {test: 60}, gpa_mean: 2.0, gpa_std: 1.0}
"""


@pytest.mark.slow
def test_a_killed_prompt_learning_job_resumes_with_identical_numbers_and_prompts(tmp_path: Path) -> None:
    """PromptSRC carries optimizer, schedule, RNG and its Gaussian aggregate across the checkpoint."""
    suite = write_suite(tmp_path, PROMPTSRC_ONE_JOB)
    (job,) = load_suite(suite).jobs
    reference = tmp_path / "uninterrupted"
    assert run_cli("run", str(suite), "--results", str(reference), "--threads", "1", cwd=tmp_path).returncode == 0

    results = tmp_path / "killed"
    directory = results / "runs" / job.run_id
    run_killed_after_first_checkpoint(suite, results, job.run_id, tmp_path)
    resumed = run_cli("run", str(suite), "--results", str(results), "--threads", "1", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    ours, theirs = result_of(results, job.run_id), result_of(reference, job.run_id)
    assert ours["resumed_at_epochs"] and ours["final_acc"] == theirs["final_acc"]
    rows = [(results / "runs" / job.run_id / "metrics.jsonl"), (reference / "runs" / job.run_id / "metrics.jsonl")]
    curves = [[(r["train_loss"], r["lr"]) for r in map(json.loads, path.read_text().splitlines())] for path in rows]
    assert curves[0] == curves[1]
    mine = torch.load(directory / "prompts.pt", weights_only=True)["prompts"]
    other = torch.load(reference / "runs" / job.run_id / "prompts.pt", weights_only=True)["prompts"]
    assert mine.keys() == other.keys() and all(torch.equal(mine[k], other[k]) for k in mine)


def test_missing_clip_weights_offline_stop_the_suite_before_any_job(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, "name: b16\nprotocol: fewshot\n"
                                  "grid: {method: zeroshot, backbone: clip_vit_b16, dataset: digits, seed: 1}\n")
    results = tmp_path / "results"
    empty_cache = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "VRBENCH_CLIP_WEIGHTS": ""}
    run = run_cli("run", str(suite), "--results", str(results), cwd=tmp_path, env=empty_cache)
    assert run.returncode == 2
    assert "nothing was started" in run.stderr and "VRBENCH_CLIP_WEIGHTS/clip_vit_b16.bin" in run.stderr
    assert not (results / "runs").exists()


def test_clip_weights_in_the_weights_folder_count_as_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vrbench.clip.models import weights_on_disk

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("VRBENCH_CLIP_WEIGHTS", str(tmp_path / "weights"))
    assert weights_on_disk("clip_tiny")  # random init: nothing to fetch
    assert not weights_on_disk("clip_vit_b32")
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "clip_vit_b32.bin").write_bytes(b"x")
    assert weights_on_disk("clip_vit_b32")
