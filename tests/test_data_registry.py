"""The dataset catalogue: every dataset of the four papers with its documented facts, CoOp's name cleaning, and
the data-root lookup order."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vrbench.datasets import DATASETS
from vrbench.datasets import classnames as cn
from vrbench.datasets.catalog import DOMAIN_SHIFT_DATASETS, PROMPT_DATASETS, VR_DATASETS
from vrbench.datasets.roots import resolve_data_root
from vrbench.errors import ConfigError
from vrbench.registry import load_object

# name: (classes, train, val, test, VR input size) from docs/methods.md VR §5 and docs/methods.md CLIP §2.1
DOCUMENTED = {
    "cifar10": (10, 50000, None, 10000, 32),
    "cifar100": (100, 50000, None, 10000, 32),
    "svhn": (10, 73257, None, 26032, 32),
    "gtsrb": (43, 26640, None, 12630, 32),
    "flowers102": (102, 4093, 1633, 2463, 128),
    "dtd": (47, 2820, 1128, 1692, 128),
    "ucf101": (101, 7639, 1898, 3783, 128),
    "food101": (101, 50500, 20200, 30300, 128),
    "eurosat": (10, 13500, 5400, 8100, 128),
    "oxfordpets": (37, 2944, 736, 3669, 128),
    "stanfordcars": (196, 6509, 1635, 8041, 128),
    "sun397": (397, 15880, 3970, 19850, 128),
    "abide": (2, 931, None, 104, 200),
    "caltech101": (100, 4128, 1649, 2465, 224),
    "fgvc_aircraft": (100, 3334, 3333, 3333, 224),
    "imagenet": (1000, 1281167, None, 50000, 224),
    "imagenetv2": (1000, 0, None, 10000, 224),
    "imagenet_sketch": (1000, 0, None, 50889, 224),
    "imagenet_a": (200, 0, None, 7500, 224),
    "imagenet_r": (200, 0, None, 30000, 224),
    "animal_shapes": (10, 8000, None, 2000, 32),
    "digits": (10, 1437, None, 360, 32),
}


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_every_dataset_has_its_documented_facts(name: str) -> None:
    info = DATASETS.get(name)
    classes, train, val, test, size = DOCUMENTED[name]
    assert (info.num_classes, info.train_size, info.val_size, info.test_size, info.vr_image_size) == (
        classes, train, val, test, size)
    assert ("val" in info.splits) == (val is not None)
    assert info.licence and info.homepage and info.split_source
    assert callable(load_object(info.loader))
    if info.classes is not None:
        assert len(info.classes) == info.num_classes and len(set(info.classes)) == info.num_classes


def test_protocol_groups_cover_the_papers() -> None:
    assert len(VR_DATASETS) == 13 and len(PROMPT_DATASETS) == 11 and len(DOMAIN_SHIFT_DATASETS) == 4
    for name in VR_DATASETS:
        assert "vr" in DATASETS.get(name).protocols
    for name in (*PROMPT_DATASETS, *DOMAIN_SHIFT_DATASETS):
        assert "prompt" in DATASETS.get(name).protocols
    assert {d.name for d in DATASETS if d.offline} == {"digits", "animal_shapes"}


def test_catalogue_and_states_stay_torch_free() -> None:
    code = ("import sys; from pathlib import Path; from vrbench.datasets import DATASETS; "
            "from vrbench.datasets.verify import dataset_state; import vrbench.data_cli; "
            "[dataset_state(d, Path('.')) for d in DATASETS]; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_layout_constants_equal_torchvisions_file_lists() -> None:
    from torchvision.datasets import CIFAR10, CIFAR100, SVHN

    from vrbench.datasets import layouts

    def files(cls: type) -> tuple[str, ...]:
        return tuple(name for name, _ in cls.train_list + cls.test_list) + (cls.meta["filename"],)

    assert layouts.CIFAR10_FILES == files(CIFAR10) and layouts.CIFAR100_FILES == files(CIFAR100)
    assert layouts.SVHN_FILES == (SVHN.split_list["train"][1], SVHN.split_list["test"][1])


def test_coop_name_cleaning_rules() -> None:
    assert cn.car_name("Tesla Model S Sedan 2012") == "2012 Tesla Model S Sedan"
    assert cn.sun397_name("/b/bakery/shop") == "shop bakery"
    assert cn.sun397_name("/a/airplane_cabin") == "airplane_cabin"
    assert cn.ucf101_name("ApplyEyeMakeup") == "Apply_Eye_Makeup"
    assert cn.ucf101_name("YoYo") == "Yo_Yo"
    assert cn.pet_name("american_pit_bull_terrier_105.jpg") == "american_pit_bull_terrier"
    assert cn.pet_name("Abyssinian_1.jpg") == "abyssinian"
    assert [cn.caltech_name(f) for f in ("airplanes", "Faces", "yin_yang")] == ["airplane", "face", "yin_yang"]
    assert cn.eurosat_name("SeaLake") == "Sea or Lake"
    assert cn.refine("Polka-dotted_thing") == "polka dotted thing"
    assert cn.prompt_name("apple_pie") == "apple pie"
    # the vendored lists follow the rules: pets are lowercased breeds, EuroSAT in sorted-folder order
    assert list(cn.OXFORD_PETS) == sorted(cn.OXFORD_PETS) and all(n == n.lower() for n in cn.OXFORD_PETS)
    assert list(cn.EUROSAT_FOLDERS) == sorted(cn.EUROSAT_FOLDERS) and list(cn.DTD) == sorted(cn.DTD)
    assert list(cn.CIFAR100) == sorted(cn.CIFAR100)


def test_data_root_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.yaml"
    monkeypatch.setenv("VRBENCH_CONFIG", str(config))
    monkeypatch.delenv("VRBENCH_DATA", raising=False)
    assert resolve_data_root(None).path == Path("data")  # last fallback: ./data
    config.write_text(f"data_root: {tmp_path / 'from-config'}\n")
    found = resolve_data_root(None)
    assert found.path == tmp_path / "from-config" and "config file" in found.source
    monkeypatch.setenv("VRBENCH_DATA", str(tmp_path / "from-env"))
    assert resolve_data_root(None).path == tmp_path / "from-env"
    assert resolve_data_root(tmp_path / "flag").path == tmp_path / "flag"


@pytest.mark.parametrize("text", ["data_root: [unclosed", "- a list\n", "data_rot: /x\n"])
def test_a_bad_config_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    monkeypatch.setenv("VRBENCH_CONFIG", str(config))
    monkeypatch.delenv("VRBENCH_DATA", raising=False)
    with pytest.raises(ConfigError, match="config.yaml"):
        resolve_data_root(None)
