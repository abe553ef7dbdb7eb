"""Tests for vrbench.engine.device: the device/precision plan (no GPU is used, only planned)."""

from __future__ import annotations

import pytest
import torch

from vrbench.engine.device import DevicePlan, select_device
from vrbench.errors import ConfigError


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_auto_without_cuda_is_cpu_fp32():
    plan = select_device("auto", cuda_available=False)
    assert plan.device == torch.device("cpu")
    assert plan.precision == "fp32" and plan.amp is False
    assert plan.threads == torch.get_num_threads()


def test_cpu_stays_cpu_even_when_cuda_is_available():
    plan = select_device("cpu", cuda_available=True)
    assert plan.device.type == "cpu" and plan.precision == "fp32"


def test_auto_with_cuda_plans_fp16_amp_on_the_gpu():
    plan = select_device("auto", cuda_available=True)
    assert plan.device == torch.device("cuda")
    assert plan.precision == "fp16-amp" and plan.amp is True


def test_explicit_cuda_index_is_kept():
    plan = select_device("cuda:1", cuda_available=True)
    assert plan.device == torch.device("cuda", 1) and plan.amp


@pytest.mark.parametrize("requested", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_is_a_config_error_that_mentions_cuda_visible_devices(requested):
    with pytest.raises(ConfigError, match="CUDA_VISIBLE_DEVICES") as info:
        select_device(requested, cuda_available=False)
    assert f"'{requested}'" in str(info.value) and "--device cpu" in str(info.value)


@pytest.mark.parametrize("requested", ["tpu", "mps", "gpu", ""])
def test_unknown_devices_are_config_errors(requested):
    with pytest.raises(ConfigError, match="use one of: auto, cpu, cuda, cuda:N"):
        select_device(requested, cuda_available=False)


def test_threads_sets_torch_threads(restore_threads):
    target = 1 if restore_threads != 1 else 2
    plan = select_device("cpu", threads=target, cuda_available=False)
    assert torch.get_num_threads() == target
    assert plan.threads == target


def test_no_threads_leaves_torch_threads_alone(restore_threads):
    torch.set_num_threads(1)
    assert select_device("auto", cuda_available=False).threads == 1
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("threads", [0, -1])
def test_threads_below_one_are_rejected(restore_threads, threads):
    with pytest.raises(ConfigError, match="threads must be at least 1"):
        select_device("cpu", threads=threads, cuda_available=False)
    assert torch.get_num_threads() == restore_threads


def test_cuda_availability_defaults_to_what_torch_sees():
    plan = select_device("auto")
    assert plan.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_device_plan_is_frozen():
    plan = DevicePlan(torch.device("cpu"), "fp32", 2)
    with pytest.raises(AttributeError):
        plan.precision = "fp16-amp"  # type: ignore[misc]


def test_a_malformed_cuda_index_is_a_config_error():
    with pytest.raises(ConfigError):
        select_device("cuda:first", cuda_available=True)
