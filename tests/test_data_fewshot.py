"""CoOp's few-shot sampling (reproduced draw for draw), its JSON index files, and the base-to-novel split."""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from pathlib import Path

import pytest

from vrbench.datasets import DATASETS
from vrbench.datasets.coop import file_list
from vrbench.datasets.fewshot import (
    base_novel_labels,
    fewshot_file_lists,
    fewshot_path,
    make_fewshot_record,
    read_fewshot_file,
    sample_fewshot,
    subsample_classes,
    subsample_file_list,
    write_fewshot_files,
)
from vrbench.errors import ConfigError, MissingResourceError
from vrbench.testing import write_coop_dataset, write_imagenet_family


class Datum:
    def __init__(self, impath: str, label: int) -> None:
        self.impath, self.label = impath, label


def dassl_fewshot(data_source: list[Datum], num_shots: int) -> list[Datum]:
    """Dassl's generate_fewshot_dataset (repeat=False), transcribed: the reference being reproduced."""
    tracker = defaultdict(list)
    for item in data_source:
        tracker[item.label].append(item)
    dataset = []
    for _, items in tracker.items():
        sampled = random.sample(items, num_shots) if len(items) >= num_shots else items
        dataset.extend(sampled)
    return dataset


@pytest.mark.parametrize("shots", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sampling_reproduces_dassl_after_set_random_seed(shots: int, seed: int) -> None:
    order = random.Random(99).sample(range(300), 300)  # interleaved labels, uneven classes, one class of 3
    train = [Datum(f"t{i}.jpg", i % 17 if i % 50 else 16) for i in order]
    val = [Datum(f"v{i}.jpg", i % 17) for i in range(60)]
    random.seed(seed)  # what set_random_seed does to Python's RNG
    expected_train = [d.impath for d in dassl_fewshot(train, shots)]
    expected_val = [d.impath for d in dassl_fewshot(val, min(shots, 4))]
    state = random.getstate()
    got_train, got_val = sample_fewshot([d.label for d in train], [d.label for d in val], shots, seed)
    assert [train[i].impath for i in got_train] == expected_train
    assert [val[i].impath for i in got_val] == expected_val
    assert random.getstate() == state  # our draw leaves the global RNG alone


def test_sampling_errors() -> None:
    with pytest.raises(ConfigError):
        sample_fewshot([0, 1], None, 0, 1)


def test_fewshot_files_are_stable_checked_and_disjoint_from_test(tmp_path: Path) -> None:
    write_coop_dataset("eurosat", tmp_path, per_class=(20, 6, 5), image_size=(8, 8))
    paths = write_fewshot_files("eurosat", tmp_path, shots=[1, 16], seeds=[1, 2])
    assert [p.name for p in paths] == ["shot_1-seed_1.json", "shot_1-seed_2.json", "shot_16-seed_1.json",
                                       "shot_16-seed_2.json"]
    first = paths[2].read_text()
    write_fewshot_files("eurosat", tmp_path, shots=[16], seeds=[1])
    assert paths[2].read_text() == first  # same draw on every run
    assert make_fewshot_record("eurosat", tmp_path, 16, 2)["train"] != json.loads(first)["train"]
    train, val = fewshot_file_lists("eurosat", tmp_path, 16, 1)
    assert len(train) == 16 * 10 and len(val) == 4 * 10  # val uses min(K, 4) shots
    test_paths = set(file_list("eurosat", "test", tmp_path).paths)
    assert not test_paths & set(train.paths) and not test_paths & set(val.paths)
    assert DATASETS.get("eurosat").classes == train.classes


def test_an_edited_fewshot_file_is_refused(tmp_path: Path) -> None:
    write_coop_dataset("dtd", tmp_path, per_class=(2, 1, 1), image_size=(8, 8))
    (path,) = write_fewshot_files("dtd", tmp_path, shots=[1], seeds=[1])
    record = json.loads(path.read_text())
    record["train"][0] = record["train"][0] + 1
    path.write_text(json.dumps(record))
    with pytest.raises(MissingResourceError, match="checksum mismatch"):
        read_fewshot_file("dtd", tmp_path, 1, 1)


def test_a_fewshot_file_from_another_split_file_is_refused(tmp_path: Path) -> None:
    write_coop_dataset("dtd", tmp_path, per_class=(2, 1, 1), image_size=(8, 8))
    write_fewshot_files("dtd", tmp_path, shots=[1], seeds=[1])
    write_coop_dataset("dtd", tmp_path, per_class=(3, 1, 1), image_size=(8, 8))  # the split file changed
    with pytest.raises(MissingResourceError, match="different split file"):
        read_fewshot_file("dtd", tmp_path, 1, 1)
    assert fewshot_path("dtd", tmp_path, 1, 1).parent.name == "split_fewshot_vrbench"


def test_imagenet_samples_train_only(tmp_path: Path) -> None:
    write_imagenet_family("imagenet", tmp_path, num_classes=3, per_class=4)
    record = make_fewshot_record("imagenet", tmp_path, 2, 1)
    assert len(record["train"]) == 6 and record["val"] == []
    with pytest.raises(ConfigError, match="no few-shot protocol"):
        make_fewshot_record("cifar10", tmp_path, 2, 1)


# ---------------------------------------------------------------- base-to-novel


@pytest.mark.parametrize(("n", "base", "new"), [(1000, 500, 500), (100, 50, 50), (37, 19, 18), (196, 98, 98),
                                                (102, 51, 51), (101, 51, 50), (397, 199, 198), (47, 24, 23),
                                                (10, 5, 5)])
def test_base_novel_counts_match_the_spec_table(n: int, base: int, new: int) -> None:
    b, nv = base_novel_labels(list(range(n)))
    assert (len(b), len(nv)) == (base, new) and b[-1] + 1 == nv[0] == math.ceil(n / 2)


def test_subsample_classes_drops_and_renumbers() -> None:
    labels = [4, 0, 3, 1, 2, 4, 0]
    kept, relabelled, mapping = subsample_classes(labels, "new")
    assert kept == [0, 2, 5] and relabelled == [1, 0, 1] and mapping == {3: 0, 4: 1}
    kept, relabelled, _ = subsample_classes(labels, "base")
    assert kept == [1, 3, 4, 6] and relabelled == [0, 1, 2, 0]
    # the split is defined by the reference (train) labels, even where the test set lacks a class
    kept, relabelled, _ = subsample_classes([4, 3], "new", reference=labels)
    assert relabelled == [1, 0]
    with pytest.raises(ConfigError):
        subsample_classes(labels, "novel")


def test_subsample_file_list_keeps_names_in_new_label_order(tmp_path: Path) -> None:
    write_coop_dataset("eurosat", tmp_path, per_class=(1, 1, 1), image_size=(8, 8))
    train = file_list("eurosat", "train", tmp_path)
    new = subsample_file_list(train, "new")
    assert new.classes == DATASETS.get("eurosat").classes[5:] and list(new.labels) == [0, 1, 2, 3, 4]
    assert subsample_file_list(train, "all") is train
