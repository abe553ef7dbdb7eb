"""Suite YAML -> validated settings -> expanded jobs.

A suite is a grid over input × mapping × backbone × dataset × seed with shared defaults and ordered,
match-based overrides. Everything is validated before a single job starts: YAML errors and unknown keys
name the file and line, unknown names suggest the closest known one, and impossible combinations (for
example a one-to-one mapping onto more target classes than the backbone has) are rejected with the reason.

This module must stay importable without torch: `vrbench status`, `ls` and `report` expand suites.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vrbench.backbones import BACKBONES
from vrbench.datasets import DATASETS
from vrbench.errors import ConfigError
from vrbench.jobs import ENGINE_VERSION, JobSpec, make_job
from vrbench.methods import INPUTS, MAPPINGS
from vrbench.methods.clip_catalog import CLIP_METHODS, PROMPT_GENERAL, PROMPT_PARAM_KINDS, PROMPT_PROTOCOLS
from vrbench.methods.clip_catalog import method_params as clip_method_params
from vrbench.plugins import import_local, job_record, requires_hint
from vrbench.prompt_jobs import resolve_prompt_jobs
from vrbench.registry import suggest, unknown_name_message
from vrbench.runner.resources import RESOURCE_KEYS, check_resource

PROTOCOLS = ("vr", *PROMPT_PROTOCOLS)
AXES = ("input", "mapping", "backbone", "dataset", "seed")
# The prompt-learning protocols' grid: method instead of input x mapping, plus the number of shots.
PROMPT_AXES = ("method", "backbone", "dataset", "shots", "seed")
# What an override's `match` may test: any axis of either kind of grid, and the protocol.
MATCH_AXES = ("protocol", "input", "mapping", "method", "backbone", "dataset", "shots", "seed")
SELECTION_RULES = ("final", "best_test", "best_val")
TOP_LEVEL_KEYS = ("name", "description", "protocol", "grid", "defaults", "overrides", "reference", "resources",
                  "plugins", "requires", "tracker")

# Hyperparameters every job has: name -> (expected type, default). Method-specific ones come from the
# method catalogue. Defaults are the papers' (ILM-VP / BLM padding recipe, docs/methods.md VR §3).
GENERAL_PARAMS: dict[str, tuple[str, Any]] = {
    "epochs": ("int", 200),
    "lr": ("float", 0.01),
    "batch_size": ("int", 128),
    "subset": ("subset?", None),  # {train: N, test: M}, a fixed stratified subset shared by all jobs
    "val_fraction": ("float", 0.0),  # > 0 carves a seeded validation split from the training data
    "milestones": ("fractions", [0.5, 0.72]),  # MultiStepLR milestones as fractions of the epochs
    "gamma": ("float", 0.1),
}
# Kinds of method hyperparameters whose default does not say it (None defaults, closed choices).
METHOD_PARAM_KINDS: dict[str, str] = {
    "image_size": "int?", "canvas": "int?", "resolution": "int?", "frame": "int?", "mask_layers": "int?",
    "mask_lr": "float?", "mask_gamma": "float?", "head_lr": "float?", "lora_targets": "str",
    "mapping_mode": "choice:faithful,fast",
    "fc_restrict": "choice:none,nobias,sigmoid", "schedule": "choice:multistep,cosine",
    "text_templates": "choice:ilm81,single", "optimizer": "choice:adam,sgd",
    "lr_schedule": "choice:cosine_iter,warmup_cosine", **PROMPT_PARAM_KINDS,
}


@dataclass(frozen=True)
class Range:
    """The values a numeric setting may take: low/high bounds (None: unbounded), each inclusive or not."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        if self.high is None:
            return "positive" if (self.low, self.low_open) == (0, True) else f"at least {self.low:g}"
        return (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}")


AT_LEAST_1, AT_LEAST_0, POSITIVE = Range(1), Range(0), Range(0, low_open=True)
# Every numeric setting's allowed values, checked where a suite sets it (defaults, an override's or a grid's `set`)
# so the error names the file and line; the built-in defaults hold them by construction. A plugin's own settings
# are only checked for their type. Method-specific rules beyond a range (SMM's mask_layers 5 or 6, a depth within
# the tower, patch_size dividing the resolution) stay with the method.
RANGES: dict[str, Range] = {
    "epochs": AT_LEAST_1, "batch_size": AT_LEAST_1, "test_batch_size": AT_LEAST_1, "warmup_epochs": AT_LEAST_0,
    "lr": POSITIVE, "head_lr": POSITIVE, "mask_lr": POSITIVE, "ft_lr": POSITIVE, "warmup_lr": POSITIVE,
    "gamma": Range(0, 1, low_open=True), "mask_gamma": Range(0, 1, low_open=True),  # decay factors of the lr
    "momentum": Range(0, 1, high_open=True), "weight_decay": AT_LEAST_0,
    "val_fraction": Range(0, 1, high_open=True), "topk_ratio": Range(0, 1, low_open=True),
    "image_size": AT_LEAST_1, "canvas": AT_LEAST_1, "resolution": AT_LEAST_1, "frame": AT_LEAST_1,
    "crop_margin": AT_LEAST_0, "patch_size": AT_LEAST_1, "mask_layers": AT_LEAST_1, "mask_channels": Range(1, 3),
    "mapping_interval": AT_LEAST_1, "lap": AT_LEAST_0, "lora_rank": AT_LEAST_1, "lora_alpha": AT_LEAST_1,
    "n_ctx": AT_LEAST_1, "n_ctx_text": AT_LEAST_1, "n_ctx_vision": AT_LEAST_1,
    "depth": AT_LEAST_1, "depth_text": AT_LEAST_1, "depth_vision": AT_LEAST_1, "num_steps": AT_LEAST_1,
    "gpa_mean": AT_LEAST_0, "gpa_std": POSITIVE,
    "n_prompts": Range(2), "prompt_batch": Range(2),  # ProDA: a Gaussian needs two prompts (the class checks <= K)
    "image_loss_weight": AT_LEAST_0, "text_loss_weight": AT_LEAST_0, "kl_loss_weight": AT_LEAST_0,
}


# Settings that choose what a report shows, not what a job computes: kept out of the job hash.
REPORT_PARAMS: dict[str, tuple[str, Any]] = {
    "selection": ("rules", ["final", "best_test", "best_val"]),
    "label": ("str?", None),  # the row name in reports, for variants of one method (e.g. a 1-channel SMM mask)
}


def _method_params() -> dict[str, Any]:
    params: dict[str, Any] = {}
    for entry in [*INPUTS, *MAPPINGS]:
        params.update(entry.params)
        params.update(getattr(entry, "late_params", {}))
    for backbone in BACKBONES:
        params.update(dict(backbone.vr_params))
    params.update(clip_method_params())
    params.update({name: default for name, (_, default) in PROMPT_GENERAL.items()})
    return params


def known_params() -> dict[str, Any]:
    """Every key a suite may set in `defaults` or an override's `set`."""
    known = {name: default for name, (_, default) in GENERAL_PARAMS.items()}
    known.update({name: default for name, (_, default) in REPORT_PARAMS.items()})
    known.update(_method_params())
    return known


@dataclass
class Suite:
    name: str
    description: str
    path: Path | None
    protocol: str
    jobs: list[JobSpec]
    reference: dict[str, Any] = field(default_factory=dict)
    # run_id -> what the job asks of a scheduler (`resources:`; not hashed, see vrbench.runner.resources)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    trackers: list[str] = field(default_factory=list)  # `tracker:` (wandb, mlflow; not hashed, vrbench.tracking)


class _Locator:
    """Maps a path of keys/indices in the parsed YAML to its line, for error messages."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.protocol = "vr"  # the suite's protocol, the default of each grid
        self.requires_hint = ""  # unknown names: which of the suite's `requires:` packages are not installed
        # (input, mapping, backbone, dataset) -> what every seed of that cell looks up alike (_cell_parts)
        self.cells: dict[tuple[str, str, str, str], tuple] = {}
        try:
            self.root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            self.root = None

    def line(self, *path: object) -> int | None:
        node = self.root
        best = node.start_mark.line + 1 if node is not None else None
        for step in path:
            if isinstance(node, yaml.MappingNode):
                match = next((value for key, value in node.value if key.value == step), None)
                key_node = next((key for key, _ in node.value if key.value == step), None)
                if match is None:
                    return best
                best = key_node.start_mark.line + 1
                node = match
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
                node = node.value[step]
                best = node.start_mark.line + 1
            else:
                return best
        return best

    def error(self, message: str, *path: object) -> ConfigError:
        line = self.line(*path)
        where = f"{self.source}:{line}" if line is not None else self.source
        return ConfigError(f"{where}: {message}")


class _StrictLoader(yaml.SafeLoader):
    """safe_load that refuses duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}' (first at line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_suite(path: str | Path) -> Suite:
    """Read, validate and expand a suite file."""
    path = Path(path)
    if not path.is_file():
        hint = ""
        bundled = sorted(p.name for p in Path("suites").glob("*.yaml")) if Path("suites").is_dir() else []
        if bundled:
            hint = f"{suggest(path.name, bundled)} Suites in ./suites: {', '.join(bundled)}."
        raise ConfigError(f"suite file '{path}' does not exist.{hint}")
    return parse_suite(path.read_text(encoding="utf-8"), source=str(path), path=path)


def parse_suite(text: str, source: str = "<suite>", path: Path | None = None) -> Suite:
    try:
        loader = _StrictLoader(text)  # a SafeLoader subclass: no arbitrary objects, no duplicate keys
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: malformed YAML: {problem}") from None
    loc = _Locator(text, source)
    if isinstance(data, dict):
        loc.protocol = data.get("protocol", "vr")
    if not isinstance(data, dict):
        raise loc.error("a suite must be a YAML mapping with at least 'name' and 'grid'")
    _check_keys(data, TOP_LEVEL_KEYS, "top-level key", loc)
    for required in ("name", "grid"):
        if required not in data:
            raise loc.error(f"missing required key '{required}'")
    name = data["name"]
    if not isinstance(name, str) or not name:
        raise loc.error("'name' must be a non-empty string", "name")
    protocol = data.get("protocol", "vr")
    if protocol not in PROTOCOLS:
        raise loc.error(unknown_name_message("protocol", protocol, list(PROTOCOLS)), "protocol")
    _load_plugins(data, loc, path)  # before the grid: plugins add the names it may use
    grids = _parse_grids(data["grid"], loc)  # after the protocol check: grids inherit the suite's protocol
    defaults = _parse_settings(data.get("defaults") or {}, loc, ("defaults",))
    overrides = _parse_overrides(data.get("overrides") or [], loc)
    reference = _parse_reference(data.get("reference") or {}, loc)

    resource_defaults, resource_overrides = _parse_resources(data.get("resources") or {}, loc)

    jobs: list[JobSpec] = []
    resources: dict[str, dict[str, Any]] = {}
    for grid, grid_settings in grids:
        grid_protocol = grid.get("protocol", [protocol])[0]
        axes = PROMPT_AXES if grid_protocol in PROMPT_PROTOCOLS else AXES
        targets = grid.get("targets", [])
        for values in itertools.product(*(grid[axis] for axis in axes)):
            combo = {"protocol": grid_protocol, **dict(zip(axes, values, strict=True))}
            settings = dict(defaults)
            for match, changes in overrides:
                if _matches(combo, match):
                    settings.update(changes)
            settings.update(grid_settings)  # a grid's own `set` is the most specific
            if grid_protocol in PROMPT_PROTOCOLS:
                try:
                    expanded = resolve_prompt_jobs(combo, settings, targets)
                except ConfigError as exc:
                    raise loc.error(str(exc), "grid") from None
            else:
                expanded = [_resolve_job(grid_protocol, combo, settings, loc)]
            for job in expanded:
                if job.run_id in resources:  # the same job listed twice by the grid runs once
                    continue
                resources[job.run_id] = dict(resource_defaults)
                for match, changes in resource_overrides:
                    if _matches(combo, match):
                        resources[job.run_id].update(changes)
                jobs.append(job)
    return Suite(name, str(data.get("description", "")), path, protocol, jobs, reference, resources,
                 _parse_trackers(data.get("tracker"), loc))


def _parse_trackers(value: Any, loc: _Locator) -> list[str]:
    """`tracker: wandb` or `tracker: [wandb, mlflow]`: trackers besides TensorBoard (`none`: not even it)."""
    from vrbench.tracking import NONE, TRACKERS

    names = _as_list(value) if value is not None else []
    for name in names:
        if name != NONE and (not isinstance(name, str) or name not in TRACKERS):
            raise loc.error(TRACKERS.unknown(name), "tracker")
    return [str(name) for name in names]


def _load_plugins(data: dict[str, Any], loc: _Locator, path: Path | None) -> None:
    """`plugins: [my_lab.vr]` imports local modules (searched next to the suite file too); `requires:
    [package, ...]` names the plugin packages the suite needs, so an unknown name can say what to install."""
    for key in ("plugins", "requires"):
        values = data.get(key) or []
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise loc.error(f"'{key}' must be a list of {'module' if key == 'plugins' else 'package'} names", key)
    loc.requires_hint = requires_hint(data.get("requires") or [])
    for index, module in enumerate(data.get("plugins") or []):
        try:
            import_local(module, path.parent if path is not None else None)
        except ConfigError as exc:
            raise loc.error(str(exc), "plugins", index) from None


def _matches(combo: dict[str, Any], match: dict[str, list[Any]]) -> bool:
    """An override applies when every axis it names has one of its values (axes a grid lacks never match)."""
    return all(key in combo and combo[key] in allowed for key, allowed in match.items())


def _check_keys(data: dict, known: tuple[str, ...] | list[str], what: str, loc: _Locator, *path: object) -> None:
    for key in data:
        if key not in known:
            raise loc.error(unknown_name_message(what, key, list(known)), *path, key)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _parse_grids(grid: Any, loc: _Locator) -> list[tuple[dict[str, list[Any]], dict[str, Any]]]:
    """A grid, or a list of grids whose job lists are concatenated (e.g. VR methods plus the baselines).

    Each grid may carry its own `set:` of hyperparameters (applied after the overrides), for a variant such as
    an ablation that differs from another grid's jobs only in its settings.
    """
    if isinstance(grid, list):
        if not grid:
            raise loc.error("'grid' is an empty list", "grid")
        return [_parse_grid(item, loc, ("grid", index)) for index, item in enumerate(grid)]
    return [_parse_grid(grid, loc, ("grid",))]


def _parse_grid(grid: Any, loc: _Locator, path: tuple) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """One grid: VR axes (input x mapping x ...) or, under a prompt-learning protocol, method x ... x shots.

    A grid may name its own `protocol` (one suite can hold the base-to-novel, cross-dataset and few-shot grids of
    a paper) and, for cross-dataset and domain generalization, the `targets` its trained prompts are tested on.
    """
    if not isinstance(grid, dict):
        raise loc.error("'grid' must be a mapping of axes to lists (or a list of such mappings)", *path)
    protocol = grid.get("protocol", loc.protocol)
    if protocol not in PROTOCOLS:
        raise loc.error(unknown_name_message("protocol", protocol, list(PROTOCOLS)), *path, "protocol")
    prompt = protocol in PROMPT_PROTOCOLS
    axes = PROMPT_AXES if prompt else AXES
    extra = ["set", "protocol", *(["targets"] if prompt else [])]
    _check_keys(grid, [*axes, *extra], "grid axis", loc, *path)
    settings = _parse_settings(grid.get("set") or {}, loc, (*path, "set"))
    for axis in axes:
        if axis not in grid and not (axis == "shots" and prompt):
            raise loc.error(f"the grid needs the axis '{axis}'", *path)
    parsed = {axis: _as_list(grid.get(axis, 16)) for axis in axes}  # "set" is not an axis; shots default 16
    for axis, values in parsed.items():
        if not values:
            raise loc.error(f"grid axis '{axis}' is empty", *path, axis)
        for index, value in enumerate(values):
            _check_axis_value(axis, value, loc, (*path, axis, index))
    parsed["protocol"] = [protocol]
    if prompt:
        targets = _as_list(grid.get("targets") or [])
        if protocol in ("cross_dataset", "domain_generalization") and not targets:
            raise loc.error(f"a {protocol} grid needs 'targets': the datasets its prompts are tested on", *path)
        if protocol not in ("cross_dataset", "domain_generalization") and targets:
            raise loc.error(f"'targets' only apply to cross_dataset and domain_generalization grids, not {protocol}",
                            *path, "targets")
        for index, value in enumerate(targets):
            _check_axis_value("dataset", value, loc, (*path, "targets", index))
        parsed["targets"] = targets
    return parsed, settings


def _check_axis_value(axis: str, value: Any, loc: _Locator, path: tuple) -> None:
    registries = {"input": INPUTS, "mapping": MAPPINGS, "backbone": BACKBONES, "dataset": DATASETS,
                  "method": CLIP_METHODS}
    if axis == "protocol":
        if value not in PROTOCOLS:
            raise loc.error(unknown_name_message("protocol", value, list(PROTOCOLS)), *path)
        return
    if axis == "shots":
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise loc.error(f"shots must be positive integers (or null for all training data), got {value!r}", *path)
        return
    if axis == "seed":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise loc.error(f"seeds must be non-negative integers, got {value!r}", *path)
        return
    registry = registries[axis]
    if not isinstance(value, str):
        raise loc.error(f"{axis} names must be strings, got {value!r}", *path)
    if value not in registry:
        raise loc.error(registry.unknown(value, loc.requires_hint), *path)


def _parse_settings(settings: Any, loc: _Locator, path: tuple) -> dict[str, Any]:
    if not isinstance(settings, dict):
        raise loc.error("expected a mapping of hyperparameters", *path)
    known = known_params()
    _check_keys(settings, list(known), "hyperparameter", loc, *path)
    types = {name: kind for name, (kind, _) in {**GENERAL_PARAMS, **REPORT_PARAMS}.items()}
    types.update(METHOD_PARAM_KINDS)
    checked: dict[str, Any] = {}
    for key, value in settings.items():
        kind = types.get(key) or _kind_of_default(known[key])
        checked[key] = _check_type(key, value, kind, loc, (*path, key))
        allowed = RANGES.get(key)
        if allowed is not None and checked[key] is not None and not allowed.holds(checked[key]):
            raise loc.error(f"{key} must be {allowed.describe()}, got {checked[key]!r}", *path, key)
    return checked


def _kind_of_default(default: Any) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    return "int?"


def _check_type(key: str, value: Any, kind: str, loc: _Locator, path: tuple) -> Any:
    def fail(expected: str) -> ConfigError:
        return loc.error(f"'{key}' must be {expected}, got {value!r}", *path)

    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind.endswith("?") and value is None:
        return None
    base = kind.rstrip("?")
    if base.startswith("choice:"):
        choices = base.split(":", 1)[1].split(",")
        if value not in choices:
            raise loc.error(unknown_name_message(f"value for '{key}'", value, choices), *path)
        return value
    if base == "str":
        if not isinstance(value, str) or not value:
            raise fail("a non-empty string")
        return value
    if base == "text":  # any string, the empty one included (CoOp's ctx_init "" means random init)
        if not isinstance(value, str):
            raise fail("a string")
        return value
    if base == "int":
        if not is_int:
            raise fail("an integer")
        return value
    if base == "float":
        if not (is_int or isinstance(value, float)) or not math.isfinite(value):
            raise fail("a finite number")
        return float(value)
    if base == "bool":
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if base == "subset":
        if not isinstance(value, dict):
            raise fail("a mapping like {train: 600, test: 360}")
        _check_keys(value, ("train", "test"), "subset key", loc, *path)
        for split, size in value.items():
            if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
                raise loc.error(f"subset size for '{split}' must be a positive integer, got {size!r}", *path, split)
        if value.get("train") is None and value.get("test") is None:
            return None  # `subset: {}` means no subset, and must hash like it
        return {"train": value.get("train"), "test": value.get("test")}
    if base == "fractions":
        if not isinstance(value, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1 for v in value):
            raise fail("a list of fractions of the epochs in (0, 1], like [0.5, 0.72]")
        return [float(v) for v in value]
    if base == "rules":
        rules = _as_list(value)
        for index, rule in enumerate(rules):
            if rule not in SELECTION_RULES:
                raise loc.error(unknown_name_message("selection rule", rule, list(SELECTION_RULES)), *path, index)
        return rules
    raise AssertionError(f"unhandled parameter kind {kind}")


def _parse_match(match: Any, loc: _Locator, path: tuple) -> dict[str, list[Any]]:
    """An override's `match`: grid axes to a value or a list of values, each a known name."""
    if not isinstance(match, dict):
        raise loc.error("'match' must map grid axes to a value or a list of values", *path, "match")
    _check_keys(match, MATCH_AXES, "match axis", loc, *path, "match")
    allowed = {axis: _as_list(values) for axis, values in match.items()}
    for axis, values in allowed.items():
        for value_index, value in enumerate(values):
            _check_axis_value(axis, value, loc, (*path, "match", axis, value_index))
    return allowed


def _parse_overrides(overrides: Any, loc: _Locator) -> list[tuple[dict[str, list[Any]], dict[str, Any]]]:
    if not isinstance(overrides, list):
        raise loc.error("'overrides' must be a list of {match: ..., set: ...} entries", "overrides")
    parsed = []
    for index, entry in enumerate(overrides):
        path = ("overrides", index)
        if not isinstance(entry, dict):
            raise loc.error("each override must be a mapping with 'match' and 'set'", *path)
        _check_keys(entry, ("match", "set"), "override key", loc, *path)
        allowed = _parse_match(entry.get("match") or {}, loc, path)
        if "set" not in entry:
            raise loc.error("an override needs 'set'", *path)
        parsed.append((allowed, _parse_settings(entry["set"], loc, (*path, "set"))))
    return parsed


def _parse_resources(section: Any, loc: _Locator) -> tuple[dict[str, Any], list[tuple[dict[str, list], dict]]]:
    """`resources: {timeout_min: 60, ..., overrides: [{match: {...}, set: {...}}]}`: scheduler requests."""
    if not isinstance(section, dict):
        raise loc.error("'resources' must be a mapping like {timeout_min: 60, gpus_per_job: 1}", "resources")
    _check_keys(section, [*RESOURCE_KEYS, "overrides"], "resource", loc, "resources")

    def checked(values: Any, *path: object) -> dict[str, Any]:
        if not isinstance(values, dict):
            raise loc.error("expected a mapping of resources", *path)
        _check_keys(values, list(RESOURCE_KEYS), "resource", loc, *path)
        for key, value in values.items():
            problem = check_resource(key, value)
            if problem:
                raise loc.error(problem, *path, key)
        return dict(values)

    defaults = checked({k: v for k, v in section.items() if k != "overrides"}, "resources")
    overrides = section.get("overrides") or []
    if not isinstance(overrides, list):
        raise loc.error("'resources.overrides' must be a list of {match: ..., set: ...}", "resources", "overrides")
    parsed = []
    for index, entry in enumerate(overrides):
        path = ("resources", "overrides", index)
        if not isinstance(entry, dict) or "set" not in entry:
            raise loc.error("each resource override must be a mapping with 'match' and 'set'", *path)
        _check_keys(entry, ("match", "set"), "override key", loc, *path)
        allowed = _parse_match(entry.get("match") or {}, loc, path)
        parsed.append((allowed, checked(entry["set"], *path, "set")))
    return defaults, parsed


def _resolve_job(protocol: str, combo: dict[str, Any], settings: dict[str, Any], loc: _Locator) -> JobSpec:
    """Fill defaults, keep only the settings this method reads, check feasibility, hash."""
    cell = (combo["input"], combo["mapping"], combo["backbone"], combo["dataset"])
    if cell not in loc.cells:
        loc.cells[cell] = _cell_parts(*cell)
    input_info, mapping_info, backbone, dataset, revision, plugins = loc.cells[cell]
    label = "/".join(str(combo[axis]) for axis in AXES)

    config: dict[str, Any] = {"protocol": protocol, **combo}
    # e.g. linear probing's lr 0.1; CLIP backbones' SGD lr 40 (ILM-VP/BLM on CLIP)
    method_defaults = {**dict(backbone.vr_defaults), **input_info.defaults, **mapping_info.defaults}
    for name, (_, default) in GENERAL_PARAMS.items():
        config[name] = settings.get(name, method_defaults.get(name, default))
    for name, default in {**input_info.params, **mapping_info.params, **dict(backbone.vr_params)}.items():
        config[name] = settings.get(name, default)
    for name, default in input_info.late_params.items():  # hashed only away from the old behaviour
        if settings.get(name, default) != default:
            config[name] = settings[name]
    if "image_size" in config and config["image_size"] is None:
        config["image_size"] = dataset.vr_image_size
    if "canvas" in config and config["canvas"] is None:
        config["canvas"] = backbone.input_size
    config["versions"] = {"engine": ENGINE_VERSION, "input": input_info.version, "mapping": mapping_info.version}
    if revision is not None:
        config["versions"]["data"] = revision
    if plugins:  # only plugin jobs carry the key, so built-in jobs keep the hashes they always had
        config["plugins"] = plugins

    problems = _infeasible(config, mapping_info, backbone, dataset)
    problems += _unpaired(input_info, mapping_info)
    selection = settings.get("selection", REPORT_PARAMS["selection"][1])
    if "best_val" in selection and config["val_fraction"] == 0 and "selection" in settings:
        problems.append("selection 'best_val' needs a validation split: set val_fraction > 0 (e.g. 0.1)")
    if problems:
        raise loc.error(f"job {label} is impossible: " + "; ".join(problems), "grid")
    if config["val_fraction"] == 0:
        selection = [rule for rule in selection if rule != "best_val"]
    return make_job(config, selection, settings.get("label"))


def _cell_parts(input_name: str, mapping_name: str, backbone_name: str, dataset_name: str) -> tuple:
    """The registry entries of a grid cell, its dataset revision and its plugin record: the same for every seed,
    so a 200,000-job grid looks them up once per cell rather than once per job."""
    input_info, mapping_info = INPUTS.get(input_name), MAPPINGS.get(mapping_name)
    backbone, dataset = BACKBONES.get(backbone_name), DATASETS.get(dataset_name)
    plugins = job_record({"input": INPUTS.source(input_name), "mapping": MAPPINGS.source(mapping_name),
                          "backbone": BACKBONES.source(backbone_name), "dataset": DATASETS.source(dataset_name)})
    return input_info, mapping_info, backbone, dataset, dataset.revision(backbone.resize), plugins


def _parse_reference(section: Any, loc: _Locator) -> dict[str, Any]:
    """`reference: {paper: STEM, rows: {METHOD_OR_LABEL: {table: T, method: M} | [..]}}`, checked against the CSVs.

    `rows` names, per method row of the report, the published row it reproduces, so reports line cells up
    without guessing; methods without an entry fall back to vrbench's built-in aliases.
    """
    from vrbench.report.references import RefSource, check_paper, load_references

    if not isinstance(section, dict):
        raise loc.error("'reference' must be a mapping such as {paper: ilm_vp_cvpr23}", "reference")
    _check_keys(section, ("paper", "rows"), "reference key", loc, "reference")
    paper = section.get("paper")
    if paper is not None:
        try:
            check_paper(paper)
        except ConfigError as exc:
            raise loc.error(str(exc), "reference", "paper") from None
    rows = section.get("rows") or {}
    if not isinstance(rows, dict):
        raise loc.error("'reference.rows' must map a method (or label) to {table: ..., method: ...}",
                        "reference", "rows")
    if rows and paper is None:
        raise loc.error("'reference.rows' needs 'reference.paper'", "reference", "rows")
    published = {(r.table, r.method) for r in load_references().get(paper, ())} if rows else set()
    parsed: dict[str, tuple] = {}
    for name, entries in rows.items():
        sources = []
        for entry in _as_list(entries):
            if not isinstance(entry, dict) or set(entry) != {"table", "method"}:
                raise loc.error("each reference row is {table: ..., method: ...}", "reference", "rows", name)
            if (entry["table"], entry["method"]) not in published:
                tables = sorted({t for t, _ in published})
                methods = sorted({m for t, m in published if t == entry["table"]})
                known = f"methods of that table: {', '.join(methods)}" if methods else f"tables: {'; '.join(tables)}"
                raise loc.error(f"{paper} has no row with table {entry['table']!r} and method {entry['method']!r}; "
                                f"known {known}", "reference", "rows", name)
            sources.append(RefSource(paper, entry["table"], entry["method"]))
        parsed[name] = tuple(sources)
    return {"paper": paper, "rows": parsed}


def _unpaired(input_info, mapping_info) -> list[str]:
    """Baselines are fixed pairs (linear probing = resize + linear_probe; fine-tuning = finetune + imagenet_head)."""
    if input_info.requires and mapping_info.name not in input_info.requires:
        return [f"input '{input_info.name}' is a baseline that only goes with mapping {input_info.requires[0]!r} "
                "(use a list of grids to combine baselines with VR methods)"]
    if mapping_info.baseline and input_info.name not in [i.name for i in INPUTS if mapping_info.name in i.requires]:
        owner = next(i.name for i in INPUTS if mapping_info.name in i.requires)
        return [f"mapping '{mapping_info.name}' is a baseline that only goes with input '{owner}'"]
    return []


def source_class_count(config: dict[str, Any], backbone, dataset) -> int:
    """The classes a label mapping chooses among: ImageNet's 1000, or CLIP's template x class text embeddings."""
    if backbone.is_clip:
        return (81 if config.get("text_templates", "ilm81") == "ilm81" else 1) * dataset.num_classes
    return backbone.num_classes


def _infeasible(config: dict[str, Any], mapping_info, backbone, dataset) -> list[str]:
    problems = []
    sources = source_class_count(config, backbone, dataset)
    if mapping_info.one_to_one and dataset.num_classes > sources:
        problems.append(
            f"mapping '{mapping_info.name}' is one-to-one and needs at least {dataset.num_classes} source classes, "
            f"but backbone '{backbone.name}' has {sources}"
        )
    if mapping_info.name == "identity" and sources != dataset.num_classes:
        problems.append(f"mapping 'identity' needs as many source classes as the {dataset.num_classes} target "
                        f"classes, but backbone '{backbone.name}' has {sources} (on CLIP: text_templates: single)")
    canvas = config.get("canvas")
    if canvas is not None and canvas < config["image_size"]:
        problems.append(f"canvas {canvas} is smaller than image_size {config['image_size']}")
    if config.get("input") == "lora" and backbone.family != "vit":
        vits = ", ".join(b.name for b in BACKBONES if b.family == "vit")
        problems.append(f"input 'lora' adapts a ViT's attention projections; backbone '{backbone.name}' is not "
                        f"one ({vits})")
    resolution = config.get("resolution") or backbone.input_size
    if "patch_size" in config and resolution % config["patch_size"]:
        problems.append(f"resolution {resolution} is not a multiple of SMM's patch_size {config['patch_size']}")
    subset = config["subset"] or {}
    for split, available in (("train", dataset.train_size), ("test", dataset.test_size)):
        if subset.get(split) is not None and subset[split] > available:
            problems.append(f"subset {split}={subset[split]} exceeds the {available} {split} images of {dataset.name}")
    return problems
