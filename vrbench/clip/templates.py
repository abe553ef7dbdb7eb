"""Text templates of the CLIP methods (docs/methods.md CLIP §3) and the class-name cleaning each family applies.

The OpenAI lists are taken from open_clip rather than retyped, so a typo cannot silently change a prompt;
the per-dataset custom templates are keyed by vrbench dataset names instead of Dassl class names.
"""

from __future__ import annotations

from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

DEFAULT_TEMPLATE = "a photo of a {}."
ILM_DEFAULT_TEMPLATE = "This is a photo of a {}."

# Dassl's ZeroshotCLIP CUSTOM_TEMPLATES (§3.1), one hand-made template per dataset.
CUSTOM_TEMPLATES: dict[str, str] = {
    "oxfordpets": "a photo of a {}, a type of pet.",
    "flowers102": "a photo of a {}, a type of flower.",
    "fgvc_aircraft": "a photo of a {}, a type of aircraft.",
    "dtd": "{} texture.",
    "eurosat": "a centered satellite photo of {}.",
    "stanfordcars": DEFAULT_TEMPLATE,
    "food101": "a photo of {}, a type of food.",
    "sun397": DEFAULT_TEMPLATE,
    "caltech101": DEFAULT_TEMPLATE,
    "ucf101": "a photo of a person doing {}.",
    "imagenet": DEFAULT_TEMPLATE,
    "imagenetv2": DEFAULT_TEMPLATE,
    "imagenet_sketch": DEFAULT_TEMPLATE,
    "imagenet_a": DEFAULT_TEMPLATE,
    "imagenet_r": DEFAULT_TEMPLATE,
}

# open_clip stores the templates as lambdas; calling them with "{}" gives back the format strings.
OPENAI_80: list[str] = [template("{}") for template in OPENAI_IMAGENET_TEMPLATES]
SELECT_7: list[str] = [template("{}") for template in SIMPLE_IMAGENET_TEMPLATES]

# PromptSRC's textual-diversity set (§3.3): "a photo of a {}." moved to the front, OpenAI entries 61-80 dropped.
_PHOTO_INDEX = OPENAI_80.index(DEFAULT_TEMPLATE)
PROMPTSRC_60: list[str] = [DEFAULT_TEMPLATE] + OPENAI_80[:_PHOTO_INDEX] + OPENAI_80[_PHOTO_INDEX + 1:60]

# ILM-VP / BLM source label space (§1.8, §3.2): the default template then the 80 OpenAI ones, never averaged.
ILM_81: list[str] = [ILM_DEFAULT_TEMPLATE] + OPENAI_80


def custom_template(dataset: str) -> str:
    """The dataset's hand-made zero-shot template; datasets outside the CoOp benchmark get the plain photo one."""
    return CUSTOM_TEMPLATES.get(dataset, DEFAULT_TEMPLATE)


def ensemble_templates(dataset: str) -> list[str]:
    """ZeroshotCLIP2's list: the 7 selected templates plus the custom one unless the dataset is ImageNet.

    A new list on every call, so the original's mutation of its class-level list cannot happen here.
    """
    return list(SELECT_7) if dataset == "imagenet" else [*SELECT_7, custom_template(dataset)]


def classname_for_prompt(name: str) -> str:
    """Dassl trainers' cleaning: underscores become spaces (the tokenizer lowercases)."""
    return name.replace("_", " ")


def vr_classname(name: str) -> str:
    """ILM-VP / BLM `refine_classnames`: lowercase, underscores and hyphens become spaces."""
    return name.lower().replace("_", " ").replace("-", " ")


def fill(template: str, classname: str) -> str:
    """Put a class name into a template by plain substitution, so braces inside names cannot break format()."""
    return template.replace("{}", classname)
