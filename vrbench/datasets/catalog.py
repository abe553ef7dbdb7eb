"""Every dataset of the four papers, plus the two offline ones: sizes, input sizes, folders, licences.

Sizes: torchvision sets are the sizes of torchvision's splits; CoOp-split sets are the sizes of CoOp's
``split_zhou_*.json`` (train / val / test, docs/methods.md CLIP §2.1); ImageNet and its variants count the images of
the official folders. The VR protocol feeds 32-px images for CIFAR10/100, SVHN and GTSRB, 128-px images for the
CoOp-split sets and 200x200 connectivity matrices for ABIDE (docs/methods.md VR §5). Sets used only by the
prompt-learning protocol get 224, CLIP's input size.

Licences are summaries for orientation, not legal advice: read each dataset's own terms.
"""

from __future__ import annotations

from dataclasses import replace

from vrbench.datasets import classnames as names
from vrbench.datasets.info import DATASETS, DatasetInfo

VR, PROMPT = ("vr",), ("prompt",)
BOTH = ("vr", "prompt")
TVT = ("train", "val", "test")
TEST_ONLY = ("test",)
COOP_SPLIT = "CoOp split_zhou_*.json (fixed train/val/test)"
COOP_SIZES = "CoOp split sizes (CoOp paper table; `vrbench data verify` checks them against the split file)"
RESEARCH_ONLY = "research / non-commercial use (see the dataset's terms)"


# Loaded with CLIP's own preprocess in the CLIP scripts of ILM-VP (experiments/clip/ilm_tp_vp.py lines 39, 43) and
# BLM (train_vlm.py lines 26, 31), which vrbench did as a bilinear square resize before revision 2.
CLIP_REVISED = ("cifar10", "cifar100", "svhn", "gtsrb")


def _add(info: DatasetInfo) -> None:
    if info.loader.startswith("vrbench.datasets.coop:"):  # file-backed: any aspect ratio, so CLIP's crop applies
        info = replace(info, clip_resize=True, lister="vrbench.datasets.coop:file_list")
    elif info.name == "gtsrb":  # file-backed too (PPM files)
        info = replace(info, lister="vrbench.datasets.torchvision_sets:gtsrb_files")
    if info.name in CLIP_REVISED:
        info = replace(info, clip_resize=True, revisions=(("clip", 2),))
    DATASETS.register(info.name, info)


# ---------------------------------------------------------------- offline (ship in packages)

_add(DatasetInfo(
    "digits", "vrbench.datasets.digits:load_digits", 10, 1437, 360, 32,
    "scikit-learn's bundled handwritten digits (8x8, upsampled)", offline=True,
    classes=names.SVHN, licence="BSD-3-Clause (scikit-learn); UCI data, CC BY 4.0",
    homepage="https://archive.ics.uci.edu/dataset/80", prepare="package",
    split_source="fixed stratified split stored in vrbench (splits/digits.json)",
))
_add(DatasetInfo(
    "animal_shapes", "vrbench.datasets.animal_shapes:load_animal_shapes", 10, 8000, 2000, 32,
    "animal-mnist 0.4 wheel (PyPI): 10,000 28x28 animal silhouettes", offline=True,
    folder="animal_shapes", classes=names.ANIMAL_SHAPES, licence="MIT",
    homepage="https://pypi.org/project/animal-mnist/0.4/", prepare="pip-wheel",
    split_source="fixed stratified split stored in vrbench (splits/animal_shapes.json: 200 test images per class)",
))

# ---------------------------------------------------------------- VR protocol: torchvision splits

_add(DatasetInfo(
    "cifar10", "vrbench.datasets.cifar:load_cifar10", 10, 50000, 10000, 32,
    "torchvision CIFAR10 (needs the data under the data root)", offline=False,
    folder="cifar-10-batches-py", classes=names.CIFAR10, licence="no explicit licence; free for research",
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html", prepare="torchvision", split_source="official train/test",
))
_add(DatasetInfo(
    "cifar100", "vrbench.datasets.torchvision_sets:load_cifar100", 100, 50000, 10000, 32,
    "torchvision CIFAR100", offline=False, folder="cifar-100-python", classes=names.CIFAR100,
    licence="no explicit licence; free for research", homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    prepare="torchvision", split_source="official train/test",
))
_add(DatasetInfo(
    "svhn", "vrbench.datasets.torchvision_sets:load_svhn", 10, 73257, 26032, 32,
    "torchvision SVHN (cropped digits; the 'extra' split is unused)", offline=False, folder="svhn",
    classes=names.SVHN, licence="non-commercial use only", homepage="http://ufldl.stanford.edu/housenumbers/",
    prepare="torchvision", split_source="official train/test",
))
_add(DatasetInfo(
    "gtsrb", "vrbench.datasets.torchvision_sets:load_gtsrb", 43, 26640, 12630, 32,
    "torchvision GTSRB", offline=False, folder="gtsrb", classes=names.GTSRB,
    licence="free for research (see the benchmark site)", homepage="https://benchmark.ini.rub.de/gtsrb_news.html",
    prepare="torchvision", split_source="official train/test (torchvision's GTSRB-Training_fixed + Final_Test)",
))

# ---------------------------------------------------------------- CoOp-split sets (VR at 128 px, and prompt learning)

_add(DatasetInfo(
    "flowers102", "vrbench.datasets.coop:load_flowers102", 102, 4093, 2463, 128,
    "Oxford Flowers 102 with CoOp's split", offline=False, val_size=1633, splits=TVT, protocols=BOTH,
    folder="oxford_flowers", licence=RESEARCH_ONLY, homepage="https://www.robots.ox.ac.uk/~vgg/data/flowers/102/",
    prepare="download", split_source=COOP_SPLIT, sizes_note=COOP_SIZES,
))
_add(DatasetInfo(
    "dtd", "vrbench.datasets.coop:load_dtd", 47, 2820, 1692, 128,
    "Describable Textures with CoOp's split", offline=False, val_size=1128, splits=TVT, protocols=BOTH,
    folder="dtd", classes=names.DTD, licence=RESEARCH_ONLY, homepage="https://www.robots.ox.ac.uk/~vgg/data/dtd/",
    prepare="download", split_source=COOP_SPLIT, sizes_note=COOP_SIZES,
))
_add(DatasetInfo(
    "ucf101", "vrbench.datasets.coop:load_ucf101", 101, 7639, 3783, 128,
    "UCF101 middle frames (CoOp's UCF-101-midframes) with CoOp's split", offline=False, val_size=1898,
    splits=TVT, protocols=BOTH, folder="ucf101", licence=RESEARCH_ONLY,
    homepage="https://www.crcv.ucf.edu/data/UCF101.php", prepare="download", split_source=COOP_SPLIT,
    sizes_note=COOP_SIZES,
))
_add(DatasetInfo(
    "food101", "vrbench.datasets.coop:load_food101", 101, 50500, 30300, 128,
    "Food-101 with CoOp's split", offline=False, val_size=20200, splits=TVT, protocols=BOTH, folder="food-101",
    licence=RESEARCH_ONLY, homepage="https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/",
    prepare="download", split_source=COOP_SPLIT, sizes_note=COOP_SIZES,
))
_add(DatasetInfo(
    "eurosat", "vrbench.datasets.coop:load_eurosat", 10, 13500, 8100, 128,
    "EuroSAT RGB (64 px, upsampled) with CoOp's split", offline=False, val_size=5400, splits=TVT, protocols=BOTH,
    folder="eurosat", classes=names.EUROSAT, licence="MIT", homepage="https://github.com/phelber/EuroSAT",
    prepare="download", split_source=COOP_SPLIT, sizes_note=COOP_SIZES,
))
_add(DatasetInfo(
    "oxfordpets", "vrbench.datasets.coop:load_oxfordpets", 37, 2944, 3669, 128,
    "Oxford-IIIT Pets with CoOp's split", offline=False, val_size=736, splits=TVT, protocols=BOTH,
    folder="oxford_pets", classes=names.OXFORD_PETS, licence="CC BY-SA 4.0",
    homepage="https://www.robots.ox.ac.uk/~vgg/data/pets/", prepare="download", split_source=COOP_SPLIT,
    sizes_note=COOP_SIZES,
))
_add(DatasetInfo(
    "stanfordcars", "vrbench.datasets.coop:load_stanfordcars", 196, 6509, 8041, 128,
    "Stanford Cars with CoOp's split", offline=False, val_size=1635, splits=TVT, protocols=BOTH,
    folder="stanford_cars", licence=RESEARCH_ONLY,
    homepage="https://ai.stanford.edu/~jkrause/cars/car_dataset.html", prepare="manual", split_source=COOP_SPLIT,
    sizes_note=COOP_SIZES,
))
_add(DatasetInfo(
    "sun397", "vrbench.datasets.coop:load_sun397", 397, 15880, 19850, 128,
    "SUN397 with CoOp's split", offline=False, val_size=3970, splits=TVT, protocols=BOTH, folder="sun397",
    licence=RESEARCH_ONLY, homepage="https://vision.princeton.edu/projects/2010/SUN/", prepare="download",
    split_source=COOP_SPLIT, sizes_note=COOP_SIZES,
))
_add(DatasetInfo(
    "abide", "vrbench.datasets.abide:load_abide", 2, 931, 104, 200,
    "ABIDE I cc200 connectivity (ILM-VP's abide.hdf5 from acerta-abide)", offline=False, folder="abide",
    classes=names.ABIDE, licence="CC BY-NC-SA 3.0 (ABIDE / FCP-INDI data use terms)",
    homepage="https://github.com/lsa-pucrs/acerta-abide", prepare="manual",
    split_source="ILM-VP: train_test_split(test_size=0.1, stratify=y, random_state=1)",
    sizes_note="1,035 subjects in acerta-abide's abide.hdf5 (ext.; not stated in the VR repos): 931 / 104",
    vr_image_mask="lower_triangle",
))

# ---------------------------------------------------------------- prompt-learning protocol only

_add(DatasetInfo(
    "caltech101", "vrbench.datasets.coop:load_caltech101", 100, 4128, 2465, 224,
    "Caltech101 (100 classes: BACKGROUND_Google and Faces_easy dropped) with CoOp's split", offline=False,
    val_size=1649, splits=TVT, protocols=PROMPT, folder="caltech-101", licence="CC BY 4.0",
    homepage="https://data.caltech.edu/records/mzrjq-6wc02", prepare="download", split_source=COOP_SPLIT,
    sizes_note=COOP_SIZES,
))
_add(DatasetInfo(
    "fgvc_aircraft", "vrbench.datasets.coop:load_fgvc_aircraft", 100, 3334, 3333, 224,
    "FGVC-Aircraft 2013b variants (official train/val/test lists)", offline=False, val_size=3333, splits=TVT,
    protocols=PROMPT, folder="fgvc_aircraft", licence="non-commercial research use",
    homepage="https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/", prepare="download",
    split_source="official images_variant_{train,val,test}.txt",
))
_add(DatasetInfo(
    "imagenet", "vrbench.datasets.coop:load_imagenet", 1000, 1281167, 50000, 224,
    "ImageNet-1k (val is the test split, as in CoOp)", offline=False, protocols=PROMPT, folder="imagenet",
    licence="ImageNet terms of access (non-commercial research)", homepage="https://image-net.org/",
    prepare="manual", split_source="official train; val used as test",
))
_add(DatasetInfo(
    "imagenetv2", "vrbench.datasets.coop:load_imagenetv2", 1000, 0, 10000, 224,
    "ImageNetV2 matched-frequency (test only)", offline=False, splits=TEST_ONLY, protocols=PROMPT,
    folder="imagenetv2", licence="MIT (code); images under ImageNet-like terms",
    homepage="https://github.com/modestyachts/ImageNetV2", prepare="download", split_source="all images are test",
))
_add(DatasetInfo(
    "imagenet_sketch", "vrbench.datasets.coop:load_imagenet_sketch", 1000, 0, 50889, 224,
    "ImageNet-Sketch (test only)", offline=False, splits=TEST_ONLY, protocols=PROMPT, folder="imagenet-sketch",
    licence="MIT", homepage="https://github.com/HaohanWang/ImageNet-Sketch", prepare="manual",
    split_source="all images are test",
))
_add(DatasetInfo(
    "imagenet_a", "vrbench.datasets.coop:load_imagenet_a", 200, 0, 7500, 224,
    "ImageNet-A (200 classes, test only)", offline=False, splits=TEST_ONLY, protocols=PROMPT,
    folder="imagenet-adversarial", licence="MIT", homepage="https://github.com/hendrycks/natural-adv-examples",
    prepare="download", split_source="all images are test",
))
_add(DatasetInfo(
    "imagenet_r", "vrbench.datasets.coop:load_imagenet_r", 200, 0, 30000, 224,
    "ImageNet-R (200 classes, test only)", offline=False, splits=TEST_ONLY, protocols=PROMPT,
    folder="imagenet-rendition", licence="MIT", homepage="https://github.com/hendrycks/imagenet-r",
    prepare="download", split_source="all images are test",
))

VR_DATASETS = ("cifar10", "cifar100", "svhn", "gtsrb", "flowers102", "dtd", "ucf101", "food101", "eurosat",
               "oxfordpets", "stanfordcars", "sun397", "abide")
PROMPT_DATASETS = ("imagenet", "caltech101", "oxfordpets", "stanfordcars", "flowers102", "food101", "fgvc_aircraft",
                   "sun397", "dtd", "eurosat", "ucf101")
DOMAIN_SHIFT_DATASETS = ("imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r")
