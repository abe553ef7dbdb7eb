"""Dataset loaders, the CIFAR-10 fixture read by torchvision's real loader, and the index helpers."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits as sklearn_load_digits

from vrbench.datasets import cifar, digits
from vrbench.datasets.cifar import load_cifar10
from vrbench.datasets.digits import load_digits
from vrbench.datasets.images import ImageSet, resolve_data_root
from vrbench.datasets.subsets import split_validation, stratified_subset
from vrbench.errors import ConfigError, MissingResourceError
from vrbench.testing import write_cifar10
from vrbench.testing.cifar_fixture import LABEL_NAMES

# ---------------------------------------------------------------- digits


@pytest.mark.parametrize(("split", "size"), [("train", 1437), ("test", 360)])
def test_digits_split_sizes_and_every_class_present(split: str, size: int) -> None:
    data = load_digits(split, 32, None)
    assert len(data) == size
    assert data.classes == tuple("0123456789")
    counts = torch.bincount(data.labels, minlength=10)
    assert (counts > 0).all()
    # stratified: each class's share matches the full dataset's to within one image
    full = np.bincount(sklearn_load_digits().target, minlength=10)
    assert np.all(np.abs(counts.numpy() - full * size / full.sum()) <= 1.0)


def test_digits_tensor_format_at_32px() -> None:
    data = load_digits("train", 32, None)
    assert data.images.dtype == torch.uint8 and data.labels.dtype == torch.int64
    assert data.images.shape == (1437, 3, 32, 32)
    assert torch.equal(data.images[:, 0], data.images[:, 1]) and torch.equal(data.images[:, 0], data.images[:, 2])
    assert int(data.images.max()) == 255 and int(data.images.min()) == 0


def test_digits_are_deterministic_across_fresh_decodes() -> None:
    first = load_digits("test", 32, None).images.clone()
    digits._load.cache_clear()
    digits._split_arrays.cache_clear()
    again = load_digits("test", 32, None)
    assert torch.equal(first, again.images)


def test_digits_at_native_size_are_the_sklearn_pixels_partitioned() -> None:
    train, test = load_digits("train", 8, None), load_digits("test", 8, None)
    bunch = sklearn_load_digits()
    expected = np.floor(bunch.data / 16.0 * 255.0 + 0.5).astype(np.uint8)
    got = torch.cat([train.images[:, 0], test.images[:, 0]]).reshape(-1, 64).numpy()
    got_labels = torch.cat([train.labels, test.labels]).numpy()
    # train + test is exactly the dataset, each image once, with its own label
    order_got = np.lexsort(np.c_[got, got_labels].T)
    order_exp = np.lexsort(np.c_[expected, bunch.target].T)
    assert np.array_equal(got[order_got], expected[order_exp])
    assert np.array_equal(got_labels[order_got], bunch.target[order_exp])


def test_digits_rejects_unknown_split_and_bad_size() -> None:
    with pytest.raises(ConfigError, match="valid splits: train, test"):
        load_digits("val", 32, None)
    with pytest.raises(ConfigError, match="image_size"):
        load_digits("train", 0, None)


# ---------------------------------------------------------------- CIFAR-10 fixture through torchvision


def _unpickle(path: Path, encoding: str) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding=encoding)


def _read_written(root: Path, names: list[str]) -> tuple[np.ndarray, list[int]]:
    """What the fixture wrote, read the way CIFAR's web page does (encoding="bytes", byte keys)."""
    data, labels = [], []
    for name in names:
        entry = _unpickle(root / "cifar-10-batches-py" / name, "bytes")
        assert set(entry) == {b"data", b"labels", b"batch_label", b"filenames"}
        data.append(entry[b"data"])
        labels += entry[b"labels"]
    return np.concatenate(data).reshape(-1, 3, 32, 32), labels


def test_cifar_fixture_round_trips_through_the_real_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRBENCH_VERIFY_CHECKSUMS", "0")
    root = write_cifar10(tmp_path, n_train=50, n_test=20, seed=3)
    train, test = load_cifar10("train", 32, root), load_cifar10("test", 32, root)

    written, labels = _read_written(root, [f"data_batch_{b}" for b in range(1, 6)])
    assert train.images.shape == (50, 3, 32, 32) and train.images.dtype == torch.uint8
    assert torch.equal(train.images, torch.from_numpy(written))
    assert train.labels.tolist() == labels and train.labels.dtype == torch.int64
    assert train.classes == LABEL_NAMES == ("airplane", "automobile", "bird", "cat", "deer",
                                            "dog", "frog", "horse", "ship", "truck")  # fmt: skip

    written, labels = _read_written(root, ["test_batch"])
    assert test.images.shape == (20, 3, 32, 32)
    assert torch.equal(test.images, torch.from_numpy(written)) and test.labels.tolist() == labels
    assert torch.bincount(test.labels, minlength=10).tolist() == [2] * 10


def test_cifar_fixture_format_matches_the_real_files(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path, n_train=23, n_test=4) / "cifar-10-batches-py"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["batches.meta", "test_batch"] + [f"data_batch_{b}" for b in range(1, 6)]
    )
    sizes = [len(_unpickle(folder / f"data_batch_{b}", "latin1")["labels"]) for b in range(1, 6)]
    assert sum(sizes) == 23 and max(sizes) - min(sizes) <= 1
    meta_bytes, meta_latin1 = _unpickle(folder / "batches.meta", "bytes"), _unpickle(folder / "batches.meta", "latin1")
    assert meta_bytes[b"label_names"][0] == b"airplane"  # Python 2 str: bytes under encoding="bytes"
    assert meta_latin1["label_names"][0] == "airplane"  # ... and str under latin1, as torchvision reads it
    batch = _unpickle(folder / "data_batch_1", "bytes")
    assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape == (5, 3072)
    assert batch[b"batch_label"] == b"training batch 1 of 5"


def test_cifar_fixture_images_are_learnable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRBENCH_VERIFY_CHECKSUMS", "0")
    root = write_cifar10(tmp_path, n_train=200, n_test=100, seed=1)
    train, test = load_cifar10("train", 32, root), load_cifar10("test", 32, root)
    x_train, x_test = train.images.flatten(1).float(), test.images.flatten(1).float()
    centroids = torch.stack([x_train[train.labels == c].mean(0) for c in range(10)])
    predicted = torch.cdist(x_test, centroids).argmin(1)
    accuracy = (predicted == test.labels).float().mean().item()
    assert accuracy >= 0.9, f"nearest-centroid accuracy {accuracy:.2f}: the fixture classes are not separable"


def test_cifar_resize_keeps_format_and_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRBENCH_VERIFY_CHECKSUMS", "0")
    root = write_cifar10(tmp_path, n_train=10, n_test=10)
    native = load_cifar10("test", 32, root).images.float()
    for size in (64, 16):
        resized = load_cifar10("test", size, root)
        assert resized.images.shape == (10, 3, size, size) and resized.images.dtype == torch.uint8
        # bilinear resizing keeps each image's mean colour
        assert torch.allclose(resized.images.float().mean((2, 3)), native.mean((2, 3)), atol=1.5)


def test_cifar_checksum_verification_rejects_the_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VRBENCH_VERIFY_CHECKSUMS", raising=False)
    root = write_cifar10(tmp_path)
    with pytest.raises(MissingResourceError) as info:
        load_cifar10("train", 32, root)
    message = str(info.value)
    assert str(root / "cifar-10-batches-py" / "data_batch_1") in message
    assert "expected md5 c99cafc152244af753f735de768cd75f, got " in message
    assert "batches.meta" in message and "test_batch" in message
    assert "VRBENCH_VERIFY_CHECKSUMS=0" in message and "re-download" in message.lower()
    monkeypatch.setenv("VRBENCH_VERIFY_CHECKSUMS", "1")  # explicit "on" behaves the same
    with pytest.raises(MissingResourceError, match="do not match torchvision's checksums"):
        load_cifar10("test", 32, root)


def test_cifar_missing_data_says_what_to_fetch_and_where(tmp_path: Path) -> None:
    with pytest.raises(MissingResourceError) as info:
        load_cifar10("train", 32, tmp_path, download=False)
    message = str(info.value)
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    assert f"{tmp_path / 'cifar-10-batches-py'}/" in message
    assert "--data-root" in message and "VRBENCH_DATA" in message
    assert "failed" not in message  # no download was attempted...
    assert list(tmp_path.iterdir()) == []  # ...and nothing was written


def test_cifar_partial_data_lists_the_missing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRBENCH_VERIFY_CHECKSUMS", "0")
    root = write_cifar10(tmp_path)
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(MissingResourceError, match=r"missing: data_batch_3\)"):
        load_cifar10("test", 32, root)


def test_cifar_failed_download_is_fast_and_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An unreachable source (a file:// URL that does not exist) keeps this test offline on every machine.
    url = (tmp_path / "nowhere" / "cifar-10-python.tar.gz").as_uri()
    monkeypatch.setattr(cifar._CheckedCIFAR10, "url", url)
    root = tmp_path / "data"
    start = time.perf_counter()
    with pytest.raises(MissingResourceError) as info:
        load_cifar10("train", 32, root, download=True)
    assert time.perf_counter() - start < 10
    message = str(info.value)
    assert f"Downloading {url} failed" in message and str(root / "cifar-10-batches-py") in message


def test_cifar_rejects_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="valid splits: train, test"):
        load_cifar10("validation", 32, tmp_path)


def test_data_root_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRBENCH_DATA", str(tmp_path / "env"))
    assert resolve_data_root(tmp_path / "explicit") == tmp_path / "explicit"
    assert resolve_data_root(None) == tmp_path / "env"
    monkeypatch.delenv("VRBENCH_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_root(None) == tmp_path / "cache" / "vrbench" / "data"


# ---------------------------------------------------------------- ImageSet


def test_imageset_subset_and_validation() -> None:
    images = torch.arange(4, dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 3, 2, 2).contiguous()
    data = ImageSet(images, torch.tensor([0, 1, 2, 1]), ("a", "b", "c"))
    part = data.subset(torch.tensor([3, 0]))
    assert len(part) == 2 and part.labels.tolist() == [1, 0] and part.images[:, 0, 0, 0].tolist() == [3, 0]
    assert part.classes == data.classes and data.num_classes == 3 and data.image_size == 2
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(images.float(), data.labels, data.classes)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        ImageSet(images, data.labels, ("a", "b"))


# ---------------------------------------------------------------- stratified_subset


def _labels(counts: list[int]) -> torch.Tensor:
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(99))]


def test_stratified_subset_is_balanced_sorted_and_unique() -> None:
    labels = _labels([30, 30, 30, 30])
    chosen = stratified_subset(labels, 10)
    assert chosen.dtype == torch.int64 and len(chosen) == 10
    assert torch.equal(chosen, torch.sort(chosen).values) and len(chosen.unique()) == 10
    assert torch.bincount(labels[chosen], minlength=4).tolist() == [3, 3, 2, 2]


def test_stratified_subset_fills_from_other_classes_when_one_runs_out() -> None:
    labels = _labels([2, 50, 50])
    counts = torch.bincount(labels[stratified_subset(labels, 30)], minlength=3).tolist()
    assert counts == [2, 14, 14]
    assert torch.equal(stratified_subset(labels, len(labels)), torch.arange(len(labels)))


def test_stratified_subset_is_deterministic_per_seed() -> None:
    labels = _labels([40, 40, 40])
    assert torch.equal(stratified_subset(labels, 12, seed=5), stratified_subset(labels, 12, seed=5))
    assert not torch.equal(stratified_subset(labels, 12, seed=5), stratified_subset(labels, 12, seed=6))
    state = torch.get_rng_state()
    stratified_subset(labels, 12)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is untouched


def test_stratified_subset_errors() -> None:
    labels = _labels([3, 3])
    with pytest.raises(ConfigError, match="only 6"):
        stratified_subset(labels, 7)
    with pytest.raises(ConfigError, match="non-negative"):
        stratified_subset(labels, -1)
    assert len(stratified_subset(labels, 0)) == 0


# ---------------------------------------------------------------- split_validation


def test_split_validation_partitions_and_stratifies() -> None:
    labels = _labels([100, 50, 20, 3, 1])
    train, val = split_validation(labels, 0.1, seed=0)
    assert torch.equal(torch.sort(torch.cat([train, val])).values, torch.arange(len(labels)))  # cover, disjoint
    assert torch.equal(train, torch.sort(train).values) and torch.equal(val, torch.sort(val).values)
    assert torch.bincount(labels[val], minlength=5).tolist() == [10, 5, 2, 1, 0]  # >= 1 when n_c >= 2
    assert (torch.bincount(labels[train], minlength=5) > 0).all()  # every class keeps training data


def test_split_validation_rounds_half_up_and_never_empties_a_class() -> None:
    labels = _labels([5, 2])
    _, val = split_validation(labels, 0.5, seed=0)
    assert torch.bincount(labels[val], minlength=2).tolist() == [3, 1]
    _, val = split_validation(labels, 0.99, seed=0)
    assert torch.bincount(labels[val], minlength=2).tolist() == [4, 1]


def test_split_validation_is_seeded() -> None:
    labels = _labels([60, 60])
    a, b, c = (split_validation(labels, 0.25, seed=s)[1] for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_split_validation_zero_fraction_and_errors() -> None:
    labels = _labels([4, 4])
    train, val = split_validation(labels, 0.0, seed=0)
    assert torch.equal(train, torch.arange(8)) and len(val) == 0
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match=r"\[0, 1\)"):
            split_validation(labels, bad, seed=0)


def test_cifar_messages_use_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingResourceError) as info:
        load_cifar10("test", 32, Path("relative"))
    assert f"{tmp_path / 'relative' / 'cifar-10-batches-py'}/" in str(info.value)


def test_the_digits_split_file_equals_scikit_learns_stratified_split() -> None:
    """The stored split is the documented train_test_split; this catches a drifted or edited split file."""
    import numpy as np
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    from vrbench.datasets.digits import _split_arrays

    bunch = sklearn_digits()
    train_idx, test_idx = train_test_split(np.arange(1797), test_size=360, stratify=bunch.target, random_state=0)
    for split, index in (("train", np.sort(train_idx)), ("test", np.sort(test_idx))):
        pixels, labels = _split_arrays(split)
        assert np.array_equal(pixels, bunch.data[index])
        assert np.array_equal(labels, bunch.target[index])
