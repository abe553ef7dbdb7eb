"""The CLIP backbones the prompt-learning methods run on, built through open_clip (docs/methods.md CLIP §5.2).

The original repos load OpenAI's JIT archives; open_clip's `-quickgelu` names with the `openai` tag are the
same weights with the right activation (the plain names silently switch to GELU). Random-init entries exist
so tests and smoke runs work offline; they are seeded so every job sees the same frozen backbone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
from open_clip.model import CLIP
from open_clip.transformer import VisionTransformer

from vrbench.errors import ConfigError, MissingResourceError
from vrbench.registry import unknown_name_message

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
TINY_MODEL_NAME = "vrbench-tiny-vit"  # stem of configs/vrbench-tiny-vit.json
WEIGHTS_ENV = "VRBENCH_CLIP_WEIGHTS"
WEIGHT_SUFFIXES = (".pt", ".bin", ".safetensors")
RANDOM_INIT_SEED = 0


@dataclass(frozen=True)
class ClipModelSpec:
    """One vrbench CLIP name: which open_clip architecture and which weights (None = seeded random init)."""

    name: str
    model_name: str
    pretrained: str | None
    description: str
    test_only: bool = False  # dimensions for parameter-count tests, not a backbone for runs


CLIP_MODELS: dict[str, ClipModelSpec] = {spec.name: spec for spec in (
    ClipModelSpec("clip_vit_b16", "ViT-B-16-quickgelu", "openai",
                  "OpenAI CLIP ViT-B/16 (base-to-novel, cross-dataset, DG and PromptSRC few-shot)"),
    ClipModelSpec("clip_vit_b32", "ViT-B-32-quickgelu", "openai",
                  "OpenAI CLIP ViT-B/32 (ILM-VP and BLM on CLIP)"),
    ClipModelSpec("clip_rn50", "RN50-quickgelu", "openai",
                  "OpenAI CLIP RN50 (CoOp few-shot examples, linear probe); image prompts are not supported"),
    ClipModelSpec("clip_tiny", TINY_MODEL_NAME, None,
                  "tiny random-init ViT CLIP (32 px, 12+12 layers) for tests and smoke runs"),
    ClipModelSpec("clip_tiny_b16dims", "ViT-B-16-quickgelu", None,
                  "random-init CLIP with ViT-B/16's dimensions, for parameter counts in tests", test_only=True),
)}


@dataclass(frozen=True)
class ClipDims:
    """The widths and depths prompt shapes depend on; vision fields are None for a ResNet image tower."""

    text_width: int
    vision_width: int | None
    embed_dim: int
    text_layers: int
    vision_layers: int | None


def _register_configs() -> None:
    """Make open_clip aware of the shipped configs once (add_model_config appends a search path each call)."""
    if TINY_MODEL_NAME not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_DIR)


def clip_spec(name: str) -> ClipModelSpec:
    if name not in CLIP_MODELS:
        raise ConfigError(unknown_name_message("CLIP model", name, list(CLIP_MODELS)))
    return CLIP_MODELS[name]


def local_weights(name: str) -> Path | None:
    """$VRBENCH_CLIP_WEIGHTS/<name>.{pt,bin,safetensors}, the first that exists."""
    folder = os.environ.get(WEIGHTS_ENV)
    if not folder:
        return None
    for suffix in WEIGHT_SUFFIXES:
        path = Path(folder) / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


HF_WEIGHT_FILES = ("open_clip_pytorch_model.bin", "open_clip_model.safetensors")


def weights_on_disk(name: str) -> bool:
    """True when loading `name` needs no download: random init, $VRBENCH_CLIP_WEIGHTS, or the Hugging Face cache."""
    spec = clip_spec(name)
    if spec.pretrained is None or local_weights(name) is not None:
        return True
    from huggingface_hub import try_to_load_from_cache

    repo = open_clip.get_pretrained_cfg(spec.model_name, spec.pretrained).get("hf_hub", "").rstrip("/")
    return bool(repo) and any(isinstance(try_to_load_from_cache(repo, filename), str) for filename in HF_WEIGHT_FILES)


def missing_weights_advice(name: str) -> str:
    """What to do when `name`'s weights are not on disk (the same advice as the load-time error)."""
    spec = clip_spec(name)
    return _missing_weights_message(spec, FileNotFoundError("not in the Hugging Face cache"))


def _hf_repo(spec: ClipModelSpec) -> str:
    repo = open_clip.get_pretrained_cfg(spec.model_name, spec.pretrained or "").get("hf_hub", "").rstrip("/")
    return f" (Hugging Face repo {repo}, file open_clip_pytorch_model.bin)" if repo else ""


def _missing_weights_message(spec: ClipModelSpec, error: Exception) -> str:
    fetch = f"import open_clip; open_clip.create_model('{spec.model_name}', pretrained='{spec.pretrained}')"
    return (
        f"CLIP weights for '{spec.name}' (open_clip '{spec.model_name}', pretrained='{spec.pretrained}') are not "
        f"on this machine and could not be downloaded ({type(error).__name__}: {error}). On a connected machine, "
        f"`python -c \"{fetch}\"` "
        "fills the Hugging Face cache (HF_HOME, default ~/.cache/huggingface), which can be copied to this machine; "
        f"or put the weights file{_hf_repo(spec)} at ${WEIGHTS_ENV}/{spec.name}.bin. Without a network, "
        "HF_HUB_OFFLINE=1 makes this check fail at once instead of after the download retries."
    )


def _freeze(model: torch.nn.Module) -> CLIP:
    model = model.float().eval()
    model.requires_grad_(False)
    return model


def load_clip(name: str) -> CLIP:
    """Build a frozen fp32 open_clip CLIP in eval mode; missing pretrained weights give one clear error."""
    spec = clip_spec(name)
    _register_configs()
    if spec.pretrained is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            return _freeze(open_clip.create_model(spec.model_name, pretrained=None, precision="fp32"))
    path = local_weights(name)
    if path is not None:
        try:
            return _freeze(open_clip.create_model(spec.model_name, pretrained=str(path), precision="fp32"))
        except Exception as exc:  # noqa: BLE001 - any unreadable weights file gets the same advice
            raise MissingResourceError(
                f"cannot load CLIP weights from {path} ({type(exc).__name__}: {exc}); expected an open_clip state "
                f"dict for '{spec.model_name}' (torch.save'd .bin/.pt or .safetensors; OpenAI's TorchScript "
                "archives are not read)") from exc
    try:
        return _freeze(open_clip.create_model(spec.model_name, pretrained=spec.pretrained, precision="fp32"))
    except Exception as exc:  # noqa: BLE001 - download errors vary by transport; all mean "weights missing"
        raise MissingResourceError(_missing_weights_message(spec, exc)) from exc


def get_clip_tokenizer(name: str) -> open_clip.tokenizer.SimpleTokenizer:
    """open_clip's bundled BPE tokenizer for the model (context 77, lowercasing, EOT = largest id)."""
    spec = clip_spec(name)
    _register_configs()
    return open_clip.get_tokenizer(spec.model_name)


def clip_dims(model: CLIP) -> ClipDims:
    """Read the dimensions from a built model, so prompt shapes are never hard-coded to ViT-B."""
    visual = model.visual
    is_vit = isinstance(visual, VisionTransformer)
    return ClipDims(
        text_width=model.transformer.width,
        vision_width=visual.transformer.width if is_vit else None,
        embed_dim=visual.output_dim,
        text_layers=len(model.transformer.resblocks),
        vision_layers=len(visual.transformer.resblocks) if is_vit else None,
    )
