"""Class names, cleaned the way CoOp cleans them, and the cleaning rules themselves.

CoOp writes already-cleaned names into its ``split_zhou_*.json`` files (docs/methods.md CLIP §2.3); for those datasets
the split file on disk is the authority and the loaders read the names from it. The lists vendored here are the
ones that are short, stable and needed without the data (suite validation, `vrbench data ls`, CLIP prompts for
torchvision sets): they equal what CoOp's JSON holds (DTD, EuroSAT, OxfordPets) or what the VR papers use
(torchvision's CIFAR names, ILM-VP's ``GTSRB_LABEL_MAP``, SVHN digits, ILM-VP's ABIDE names).

No torch import: this module is metadata.
"""

from __future__ import annotations

import re

CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# torchvision CIFAR100.classes (fine labels, index order = the "meta" file's fine_label_names).
CIFAR100 = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
    "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest",
    "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard",
    "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid",
    "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum",
    "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper",
    "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone",
    "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf",
    "woman", "worm",
)  # fmt: skip

SVHN = tuple(str(d) for d in range(10))  # torchvision maps the file's label 10 to digit 0

# ILM-VP data/const.py GTSRB_LABEL_MAP, in class-id order (the folder 00000..00042 / ClassId order).
GTSRB = (
    "20_speed", "30_speed", "50_speed", "60_speed", "70_speed", "80_speed", "80_lifted", "100_speed", "120_speed",
    "no_overtaking_general", "no_overtaking_trucks", "right_of_way_crossing", "right_of_way_general", "give_way",
    "stop", "no_way_general", "no_way_trucks", "no_way_one_way", "attention_general", "attention_left_turn",
    "attention_right_turn", "attention_curvy", "attention_bumpers", "attention_slippery", "attention_bottleneck",
    "attention_construction", "attention_traffic_light", "attention_pedestrian", "attention_children",
    "attention_bikes", "attention_snowflake", "attention_deer", "lifted_general", "turn_right", "turn_left",
    "turn_straight", "turn_straight_right", "turn_straight_left", "turn_right_down", "turn_left_down", "turn_circle",
    "lifted_no_overtaking_general", "lifted_no_overtaking_trucks",
)  # fmt: skip

# DTD: the sorted image folder names (CoOp keeps them as they are).
DTD = (
    "banded", "blotchy", "braided", "bubbly", "bumpy", "chequered", "cobwebbed", "cracked", "crosshatched",
    "crystalline", "dotted", "fibrous", "flecked", "freckled", "frilly", "gauzy", "grid", "grooved", "honeycombed",
    "interlaced", "knitted", "lacelike", "lined", "marbled", "matted", "meshed", "paisley", "perforated", "pitted",
    "pleated", "polka-dotted", "porous", "potholed", "scaly", "smeared", "spiralled", "sprinkled", "stained",
    "stratified", "striped", "studded", "swirly", "veined", "waffled", "woven", "wrinkled", "zigzagged",
)  # fmt: skip

# EuroSAT: CoOp's NEW_CNAMES (docs/methods.md CLIP §2.3), in sorted-folder (label) order.
EUROSAT_FOLDERS = (
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
    "Residential", "River", "SeaLake",
)  # fmt: skip
EUROSAT_NAMES = {
    "AnnualCrop": "Annual Crop Land",
    "Forest": "Forest",
    "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings",
    "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land",
    "Residential": "Residential Buildings",
    "River": "River",
    "SeaLake": "Sea or Lake",
}
EUROSAT = tuple(EUROSAT_NAMES[folder] for folder in EUROSAT_FOLDERS)

# OxfordPets: breed = image-name prefix before the last "_", lowercased; label = the annotation's class id - 1.
OXFORD_PETS = (
    "abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle", "bengal", "birman",
    "bombay", "boxer", "british_shorthair", "chihuahua", "egyptian_mau", "english_cocker_spaniel", "english_setter",
    "german_shorthaired", "great_pyrenees", "havanese", "japanese_chin", "keeshond", "leonberger", "maine_coon",
    "miniature_pinscher", "newfoundland", "persian", "pomeranian", "pug", "ragdoll", "russian_blue", "saint_bernard",
    "samoyed", "scottish_terrier", "shiba_inu", "siamese", "sphynx", "staffordshire_bull_terrier", "wheaten_terrier",
    "yorkshire_terrier",
)  # fmt: skip

ABIDE = ("non ASD", "ASD")  # ILM-VP data/abide.py: label = 2 - DX_GROUP, so 1 = ASD
ANIMAL_SHAPES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")

# Caltech101 folders CoOp renames; BACKGROUND_Google and Faces_easy are dropped.
CALTECH_NEW_NAMES = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}
CALTECH_IGNORED = ("BACKGROUND_Google", "Faces_easy")


# ---------------------------------------------------------------- CoOp's cleaning rules (§2.3)


def pet_name(image_name: str) -> str:
    """OxfordPets: ``Abyssinian_100.jpg`` -> ``abyssinian``."""
    stem = image_name.rsplit(".", 1)[0]
    return stem.rsplit("_", 1)[0].lower()


def caltech_name(folder: str) -> str:
    return CALTECH_NEW_NAMES.get(folder, folder)


def eurosat_name(folder: str) -> str:
    return EUROSAT_NAMES[folder]


def car_name(meta_name: str) -> str:
    """StanfordCars: ``Tesla Model S 2012`` -> ``2012 Tesla Model S`` (the trailing year moves to the front)."""
    parts = meta_name.split(" ")
    return " ".join([parts[-1], *parts[:-1]])


def sun397_name(path: str) -> str:
    """SUN397: ``/b/bakery/shop`` -> ``shop bakery``; drop the letter folder, reverse the rest, keep inner ``_``."""
    parts = path.strip("/").split("/")[1:]
    return " ".join(reversed(parts))


def ucf101_name(action: str) -> str:
    """UCF101: ``ApplyEyeMakeup`` -> ``Apply_Eye_Makeup`` (CamelCase split on capitals, joined with ``_``)."""
    return "_".join(re.findall("[A-Z][^A-Z]*", action))


def refine(name: str) -> str:
    """ILM-VP / BLM ``refine_classnames``: lower-case, ``_`` and ``-`` to spaces (used for their CLIP prompts)."""
    return name.lower().replace("_", " ").replace("-", " ")


def prompt_name(name: str) -> str:
    """What every Dassl trainer feeds to the text encoder: ``name.replace("_", " ")``."""
    return name.replace("_", " ")
