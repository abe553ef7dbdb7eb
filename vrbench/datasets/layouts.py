"""Where each dataset's files live under the data root: plain constants, no torch import (`vrbench data ls`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SplitLayout:
    """Where a CoOp split-file dataset keeps its split file and images, relative to its folder."""

    folder: str
    split_file: str
    image_dir: str  # "" = the folder itself (StanfordCars)


SPLIT_LAYOUTS: dict[str, SplitLayout] = {
    "flowers102": SplitLayout("oxford_flowers", "split_zhou_OxfordFlowers.json", "jpg"),
    "dtd": SplitLayout("dtd", "split_zhou_DescribableTextures.json", "images"),
    "ucf101": SplitLayout("ucf101", "split_zhou_UCF101.json", "UCF-101-midframes"),
    "food101": SplitLayout("food-101", "split_zhou_Food101.json", "images"),
    "eurosat": SplitLayout("eurosat", "split_zhou_EuroSAT.json", "2750"),
    "oxfordpets": SplitLayout("oxford_pets", "split_zhou_OxfordPets.json", "images"),
    "stanfordcars": SplitLayout("stanford_cars", "split_zhou_StanfordCars.json", ""),
    "sun397": SplitLayout("sun397", "split_zhou_SUN397.json", "SUN397"),
    "caltech101": SplitLayout("caltech-101", "split_zhou_Caltech101.json", "101_ObjectCategories"),
}

FGVC_FOLDER = "fgvc_aircraft"
CLASSNAMES_FILE = "classnames.txt"
# name -> (folder, image folder inside it)
IMAGENET_LAYOUTS: dict[str, tuple[str, str]] = {
    "imagenet": ("imagenet", "images"),
    "imagenetv2": ("imagenetv2", "imagenetv2-matched-frequency-format-val"),
    "imagenet_sketch": ("imagenet-sketch", "images"),
    "imagenet_a": ("imagenet-adversarial", "imagenet-a"),
    "imagenet_r": ("imagenet-rendition", "imagenet-r"),
}

# The files torchvision's CIFAR classes open (torchvision's train_list + test_list + meta).
CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta")
CIFAR100_FILES = ("train", "test", "meta")
SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")
ABIDE_HDF5 = "abide.hdf5"
ABIDE_PHENOTYPES = "Phenotypic_V1_0b_preprocessed1.csv"
ANIMAL_FILES = ("animal_data_version_3.gz", "animal_label_version_3.gz")
