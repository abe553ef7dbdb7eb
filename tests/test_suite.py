"""Tests for vrbench.suite: grid expansion, defaults and overrides, validation errors with file:line, feasibility."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from vrbench.backbones import BACKBONES
from vrbench.datasets import DATASETS, DatasetInfo
from vrbench.errors import ConfigError
from vrbench.methods import INPUTS, MAPPINGS
from vrbench.suite import Suite, _infeasible, known_params, load_suite, parse_suite

REPO = Path(__file__).resolve().parent.parent

# Line numbers matter in this file: BASE is lines 1-7, so whatever a test appends starts at line 8.
BASE = """\
name: t
grid:
  input: [padding]
  mapping: [ilm]
  backbone: [efficientnet_lite0]
  dataset: [digits]
  seed: [0]
"""


def suite_text(*, mapping="[ilm]", backbone="[efficientnet_lite0]", dataset="[digits]", seed="[0]", extra="") -> str:
    return (
        "name: t\n"
        "grid:\n"
        "  input: [padding]\n"
        f"  mapping: {mapping}\n"
        f"  backbone: {backbone}\n"
        f"  dataset: {dataset}\n"
        f"  seed: {seed}\n"
        f"{extra}"
    )


def parse(text: str) -> Suite:
    return parse_suite(text, source="x.yaml")


def config_error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return str(info.value)


# ---------------------------------------------------------------------------------------------- grid expansion


def test_grid_is_the_cross_product_in_axis_order():
    suite = parse(suite_text(mapping="[rlm, ilm, blmpp]", backbone="[efficientnet_lite0, efficientnet_lite1]",
                             seed="[0, 1, 2]"))
    assert len(suite.jobs) == 3 * 2 * 3
    got = [(j.config["mapping"], j.config["backbone"], j.config["seed"]) for j in suite.jobs]
    expected = list(itertools.product(["rlm", "ilm", "blmpp"], ["efficientnet_lite0", "efficientnet_lite1"],
                                      [0, 1, 2]))
    assert got == expected  # input, mapping, backbone, dataset, seed: the seed varies fastest
    assert all(j.config["input"] == "padding" and j.config["dataset"] == "digits" for j in suite.jobs)
    assert len({j.run_id for j in suite.jobs}) == len(suite.jobs)
    assert suite.name == "t" and suite.protocol == "vr"


def test_a_scalar_axis_value_is_a_one_element_list():
    suite = parse(suite_text(mapping="blm", seed="3"))
    assert [(j.config["mapping"], j.config["seed"]) for j in suite.jobs] == [("blm", 3)]


def test_a_job_listed_twice_by_the_grid_runs_once():
    suite = parse(suite_text(mapping="[ilm, blm, ilm]", seed="[0, 0, 1]"))
    assert [(j.config["mapping"], j.config["seed"]) for j in suite.jobs] == [
        ("ilm", 0), ("ilm", 1), ("blm", 0), ("blm", 1)]


# ----------------------------------------------------------------------------------- defaults and overrides


def test_defaults_fill_every_job_and_paper_defaults_apply_when_unset():
    plain = parse(BASE).jobs[0].config
    assert (plain["epochs"], plain["lr"], plain["batch_size"]) == (200, 0.01, 128)
    assert plain["milestones"] == [0.5, 0.72] and plain["gamma"] == 0.1 and plain["val_fraction"] == 0.0
    set_ = parse(BASE + "defaults: {epochs: 4, lr: 0.05, batch_size: 16}\n").jobs[0].config
    assert (set_["epochs"], set_["lr"], set_["batch_size"]) == (4, 0.05, 16)


def test_overrides_match_each_axis_and_later_entries_win():
    extra = """\
defaults: {epochs: 5, batch_size: 8}
overrides:
  - match: {mapping: ilm}
    set: {epochs: 7}
  - match: {mapping: [ilm, blm], seed: 1}
    set: {epochs: 9}
  - match: {dataset: cifar10}
    set: {batch_size: 64}
  - match: {backbone: efficientnet_lite1, dataset: digits}
    set: {lr: 0.02}
  - match: {mapping: ilm, seed: [1]}
    set: {epochs: 11}
"""
    suite = parse(suite_text(mapping="[ilm, blm]", backbone="[efficientnet_lite0, efficientnet_lite1]",
                             dataset="[digits, cifar10]", seed="[0, 1]", extra=extra))
    assert len(suite.jobs) == 16
    for job in suite.jobs:
        c = job.config
        epochs = 5
        if c["mapping"] == "ilm":
            epochs = 7
        if c["seed"] == 1:
            epochs = 11 if c["mapping"] == "ilm" else 9
        assert c["epochs"] == epochs, job.label()
        assert c["batch_size"] == (64 if c["dataset"] == "cifar10" else 8), job.label()
        both = c["backbone"] == "efficientnet_lite1" and c["dataset"] == "digits"
        assert c["lr"] == (0.02 if both else 0.01), job.label()


def test_an_override_without_match_applies_everywhere_and_an_earlier_one_loses():
    extra = """\
overrides:
  - match: {mapping: ilm}
    set: {epochs: 3}
  - set: {epochs: 4}
"""
    assert parse(BASE + extra).jobs[0].config["epochs"] == 4


def test_method_specific_params_appear_only_for_the_methods_that_read_them():
    extra = "defaults: {topk_ratio: 0.3, lap: 2.0, mapping_interval: 2, canvas: 128}\n"
    jobs = {j.config["mapping"]: j.config for j in parse(suite_text(mapping="[rlm, ilm, blm, blmpp]",
                                                                    extra=extra)).jobs}
    method_keys = {"topk_ratio", "lap", "mapping_interval"}
    assert method_keys.isdisjoint(jobs["rlm"])
    assert {k: jobs["ilm"][k] for k in method_keys & set(jobs["ilm"])} == {"mapping_interval": 2}
    assert {k: jobs["blm"][k] for k in method_keys & set(jobs["blm"])} == {"mapping_interval": 2, "lap": 2.0}
    assert {k: jobs["blmpp"][k] for k in method_keys} == {"mapping_interval": 2, "lap": 2.0, "topk_ratio": 0.3}
    assert all(config["canvas"] == 128 for config in jobs.values())  # every job here has the padding input
    assert jobs["blmpp"]["versions"] == {"engine": 1, "input": 1, "mapping": 1}


def test_a_param_a_method_does_not_read_leaves_its_run_id_alone():
    ilm_plain = parse(BASE).jobs[0]
    ilm_topk = parse(BASE + "defaults: {topk_ratio: 0.5}\n").jobs[0]
    assert ilm_topk.run_id == ilm_plain.run_id
    blmpp_plain = parse(suite_text(mapping="[blmpp]")).jobs[0]
    blmpp_topk = parse(suite_text(mapping="[blmpp]", extra="defaults: {topk_ratio: 0.5}\n")).jobs[0]
    assert blmpp_topk.run_id != blmpp_plain.run_id
    assert blmpp_plain.config["topk_ratio"] == 0.15


def test_selection_is_not_hashed_and_best_val_is_dropped_without_a_validation_split():
    plain = parse(BASE).jobs[0]
    chosen = parse(BASE + "defaults: {selection: [final]}\n").jobs[0]
    assert plain.run_id == chosen.run_id and "selection" not in plain.config
    assert plain.selection == ["final", "best_test"]
    assert chosen.selection == ["final"]
    with_val = parse(BASE + "defaults: {val_fraction: 0.1}\n").jobs[0]
    assert with_val.selection == ["final", "best_test", "best_val"]
    assert with_val.run_id != plain.run_id and with_val.config["val_fraction"] == 0.1


def test_image_size_and_canvas_come_from_the_dataset_and_backbone_when_unset():
    suite = parse(suite_text(backbone="[efficientnet_lite0, efficientnet_lite1, efficientnet_lite2]"))
    assert [(j.config["image_size"], j.config["canvas"]) for j in suite.jobs] == [(32, 224), (32, 240), (32, 260)]
    explicit = parse(suite_text(extra="defaults: {image_size: 40, canvas: 100}\n")).jobs[0].config
    assert (explicit["image_size"], explicit["canvas"]) == (40, 100)
    null = parse(suite_text(extra="defaults: {image_size: null, canvas: null}\n")).jobs[0].config
    assert (null["image_size"], null["canvas"]) == (32, 224)


def test_int_lr_is_normalised_to_float_so_both_spellings_are_one_job():
    one = parse(BASE + "defaults: {lr: 1}\n").jobs[0]
    one_float = parse(BASE + "defaults: {lr: 1.0}\n").jobs[0]
    assert one.config["lr"] == 1.0 and isinstance(one.config["lr"], float)
    assert one.run_id == one_float.run_id


def test_subset_is_normalised_to_both_splits():
    config = parse(BASE + "defaults: {subset: {train: 100}}\n").jobs[0].config
    assert config["subset"] == {"train": 100, "test": None}


# ------------------------------------------------------------------------------------- malformed YAML, names


def test_malformed_yaml_names_file_line_and_column():
    message = config_error("name: t\ngrid:\n\tinput: [padding]\n")
    assert message.startswith("x.yaml:3:1: malformed YAML")
    message = config_error("name: t\ngrid:\n  input: [padding]\n  mapping: [ilm\n  backbone: x\n")
    assert message.startswith("x.yaml:5:")


def test_load_suite_uses_the_path_in_messages(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text(BASE + "defaults: {epoch: 3}\n")
    with pytest.raises(ConfigError, match=rf"^{path}:8: unknown hyperparameter 'epoch'"):
        load_suite(path)
    good = tmp_path / "good.yaml"
    good.write_text(BASE)
    suite = load_suite(good)
    assert suite.path == good and len(suite.jobs) == 1


def test_load_suite_missing_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_suite(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "prefix", "suggestion", "known"),
    [
        (BASE + "defautls: {epochs: 3}\n", "x.yaml:8: unknown top-level key 'defautls'.", "defaults",
         "Known top-level keys: defaults, description, grid, name, overrides, plugins, protocol, reference, requires, "
         "resources, tracker."),
        (suite_text(extra="").replace("  backbone:", "  backbones:"), "x.yaml:5: unknown grid axis 'backbones'.",
         "backbone", "Known grid ax"),
        (BASE + "defaults:\n  lr: 0.1\n  epoch: 3\n", "x.yaml:10: unknown hyperparameter 'epoch'.", "epochs",
         f"Known hyperparameters: {', '.join(sorted(known_params()))}."),
        (suite_text(mapping="[rlm, ilmm]"), "x.yaml:4: unknown mapping 'ilmm'.", "ilm",
         f"Known mappings: {', '.join(sorted(MAPPINGS.names()))}."),
        (suite_text(backbone="[resnt18]"), "x.yaml:5: unknown backbone 'resnt18'.", "resnet18",
         f"Known backbones: {', '.join(sorted(BACKBONES.names()))}."),
        (suite_text(dataset="[digit]"), "x.yaml:6: unknown dataset 'digit'.", "digits",
         f"Known datasets: {', '.join(sorted(DATASETS.names()))}."),
        (suite_text().replace("[padding]", "[paddng]"), "x.yaml:3: unknown input 'paddng'.", "padding",
         f"Known inputs: {', '.join(sorted(INPUTS.names()))}."),
        (BASE + "overrides:\n  - match: {mapping: ilm}\n    set: {epochs: 1}\n  - match: {datasets: digits}\n"
                "    set: {epochs: 2}\n", "x.yaml:11: unknown match axis 'datasets'.", "dataset",
         "Known match ax"),
        (BASE + "overrides:\n  - match: {mapping: [blm, ilmm]}\n    set: {epochs: 1}\n",
         "x.yaml:9: unknown mapping 'ilmm'.", "ilm", f"Known mappings: {', '.join(sorted(MAPPINGS.names()))}."),
        (BASE + "overrides:\n  - match: {mapping: ilm}\n    set:\n      batchsize: 4\n",
         "x.yaml:11: unknown hyperparameter 'batchsize'.", "batch_size", "Known hyperparameters: batch_size,"),
        (BASE + "overrides:\n  - match: {mapping: ilm}\n    sett: {epochs: 1}\n",
         "x.yaml:10: unknown override key 'sett'.", "set", "Known override keys: match, set."),
        (BASE + "defaults: {selection: [final, best_tset]}\n", "x.yaml:8: unknown selection rule 'best_tset'.",
         "best_test", "Known selection rules: best_test, best_val, final."),
    ],
    ids=["top-level", "grid-axis", "hyperparameter", "mapping", "backbone", "dataset", "input", "match-axis",
         "match-value", "override-set", "override-key", "selection-rule"],
)
def test_unknown_names_give_line_suggestion_and_known_names(text, prefix, suggestion, known):
    message = config_error(text)
    assert message.startswith(prefix), message
    assert f"Did you mean '{suggestion}'?" in message
    assert known in message
    if "axis" in prefix:
        assert message.endswith(": backbone, dataset, input, mapping, protocol, seed, set.") or message.endswith(
            ": backbone, dataset, input, mapping, method, protocol, seed, shots.")


def test_an_unknown_name_with_nothing_close_lists_the_known_names_without_a_guess():
    message = config_error(suite_text(backbone="[vit_huge_patch14_clip]"))
    assert message.startswith("x.yaml:5: unknown backbone 'vit_huge_patch14_clip'.")
    assert "Did you mean" not in message and "Known backbones: clip_rn50, clip_tiny" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "x.yaml: a suite must be a YAML mapping"),
        ("- a\n- b\n", "x.yaml:1: a suite must be a YAML mapping"),
        ("grid: {}\n", "missing required key 'name'"),
        ("name: t\n", "missing required key 'grid'"),
        ("name: ''\ngrid: {}\n", "x.yaml:1: 'name' must be a non-empty string"),
        (BASE.replace("  seed: [0]\n", ""), "x.yaml:2: the grid needs the axis 'seed'"),
        (BASE.replace("seed: [0]", "seed: []"), "x.yaml:7: grid axis 'seed' is empty"),
        ("name: t\ngrid: [a]\n", "x.yaml:2: 'grid' must be a mapping"),
        (BASE + "protocol: fewshots\n", "x.yaml:8: unknown protocol 'fewshots'"),
        (BASE + "overrides: {match: {mapping: ilm}}\n", "x.yaml:8: 'overrides' must be a list"),
        (BASE + "overrides:\n  - match: {mapping: ilm}\n", "x.yaml:9: an override needs 'set'"),
        (BASE + "reference: ilm_vp_cvpr23\n", "x.yaml:8: 'reference' must be a mapping"),
        (BASE + "defaults: [epochs]\n", "x.yaml:8: expected a mapping of hyperparameters"),
    ],
)
def test_structural_errors(text, expected):
    assert expected in config_error(text)


# ------------------------------------------------------------------------------------------------ type errors


@pytest.mark.parametrize(
    ("setting", "line", "expected"),
    [
        ('epochs: "3"', 9, "'epochs' must be an integer, got '3'"),
        ("epochs: 3.5", 9, "'epochs' must be an integer, got 3.5"),
        ("epochs: true", 9, "'epochs' must be an integer, got True"),
        ("lr: abc", 9, "'lr' must be a finite number, got 'abc'"),
        ("lr: [0.1]", 9, "'lr' must be a finite number"),
        ("batch_size: null", 9, "'batch_size' must be an integer, got None"),
        ("lap: yes", 9, "'lap' must be a finite number, got True"),
        ("mapping_interval: 1.5", 9, "'mapping_interval' must be an integer"),
        ("canvas: big", 9, "'canvas' must be an integer, got 'big'"),
        ("subset: 100", 9, "'subset' must be a mapping like {train: 600, test: 360}"),
        ("subset: {train: 10, tests: 5}", 9, "unknown subset key 'tests'. Did you mean 'test'?"),
        ("subset: {train: 0}", 9, "subset size for 'train' must be a positive integer, got 0"),
        ("subset: {test: -5}", 9, "subset size for 'test' must be a positive integer, got -5"),
        ('subset: {train: "10"}', 9, "subset size for 'train' must be a positive integer, got '10'"),
        ("subset: {train: 1.5}", 9, "subset size for 'train' must be a positive integer, got 1.5"),
        ("subset: {train: true}", 9, "subset size for 'train' must be a positive integer, got True"),
        ("milestones: [0.5, 2]", 9, "'milestones' must be a list of fractions"),
        ("milestones: 0.5", 9, "'milestones' must be a list of fractions"),
    ],
)
def test_type_errors_name_the_key_the_value_and_the_line(setting, line, expected):
    message = config_error(BASE + f"defaults:\n  {setting}\n")
    assert message.startswith(f"x.yaml:{line}: "), message
    assert expected in message


@pytest.mark.parametrize(("seeds", "shown"), [("[0, -1]", "-1"), ('[0, "1"]', "'1'"), ("[true]", "True"),
                                              ("[1.0]", "1.0")])
def test_seeds_must_be_non_negative_integers(seeds, shown):
    message = config_error(suite_text(seed=seeds))
    assert message.startswith("x.yaml:7: seeds must be non-negative integers"), message
    assert message.endswith(f"got {shown}")


def test_a_type_error_inside_an_override_points_at_its_line():
    message = config_error(BASE + "overrides:\n  - match: {mapping: ilm}\n    set: {lr: fast}\n")
    assert message.startswith("x.yaml:10: 'lr' must be a finite number, got 'fast'")


# ----------------------------------------------------------------------------------- impossible combinations


def test_canvas_smaller_than_image_size_is_rejected_with_the_reason():
    message = config_error(BASE + "defaults: {image_size: 64, canvas: 48}\n")
    assert "job padding/ilm/efficientnet_lite0/digits/0 is impossible" in message
    assert "canvas 48 is smaller than image_size 64" in message
    assert parse(BASE + "defaults: {image_size: 64, canvas: 64}\n").jobs[0].config["canvas"] == 64


def test_impossible_message_names_the_job_an_override_broke():
    extra = "overrides:\n  - match: {mapping: blm, seed: 1}\n    set: {canvas: 16}\n"
    message = config_error(suite_text(mapping="[ilm, blm]", seed="[0, 1]", extra=extra))
    expected = "job padding/blm/efficientnet_lite0/digits/1 is impossible: canvas 16 is smaller than image_size 32"
    assert expected in message


def test_image_size_larger_than_the_backbone_input_needs_an_explicit_canvas():
    message = config_error(BASE + "defaults: {image_size: 300}\n")
    assert "canvas 224 is smaller than image_size 300" in message


@pytest.mark.parametrize(
    ("subset", "expected"),
    [("{train: 1438}", "subset train=1438 exceeds the 1437 train images of digits"),
     ("{test: 361}", "subset test=361 exceeds the 360 test images of digits")],
)
def test_subset_larger_than_the_dataset_is_rejected(subset, expected):
    assert expected in config_error(BASE + f"defaults: {{subset: {subset}}}\n")


def test_subset_exactly_the_dataset_size_is_allowed():
    config = parse(BASE + "defaults: {subset: {train: 1437, test: 360}}\n").jobs[0].config
    assert config["subset"] == {"train": 1437, "test": 360}


def test_subset_is_checked_against_each_dataset():
    # 5000 train images is fine for cifar10 (50000) but not for digits (1437).
    text = suite_text(dataset="[cifar10, digits]", extra="defaults: {subset: {train: 5000}}\n")
    message = config_error(text)
    assert "job padding/ilm/efficientnet_lite0/digits/0 is impossible" in message
    assert "subset train=5000 exceeds the 1437 train images of digits" in message
    ok = parse(suite_text(dataset="[cifar10]", extra="defaults: {subset: {train: 5000}}\n"))
    assert ok.jobs[0].config["subset"] == {"train": 5000, "test": None}


def test_best_val_without_a_validation_split_is_rejected():
    message = config_error(BASE + "defaults: {selection: [best_val]}\n")
    assert "selection 'best_val' needs a validation split: set val_fraction > 0" in message
    ok = parse(BASE + "defaults: {selection: [best_val], val_fraction: 0.2}\n").jobs[0]
    assert ok.selection == ["best_val"] and ok.config["val_fraction"] == 0.2


@pytest.mark.parametrize("fraction", ["1", "1.0", "1.5", "-0.1"])
def test_val_fraction_outside_zero_one_is_rejected(fraction):
    message = config_error(BASE + f"defaults: {{val_fraction: {fraction}}}\n")
    assert f"val_fraction must be in [0, 1), got {float(fraction)}" in message


@pytest.mark.parametrize(("setting", "expected"), [("epochs: 0", "epochs must be at least 1"),
                                                   ("batch_size: -2", "batch_size must be at least 1"),
                                                   ("image_size: 0", "image_size must be at least 1"),
                                                   ("lr: 0", "lr must be positive"),
                                                   ("lr: -0.01", "lr must be positive")])
def test_non_positive_sizes_and_rates_are_rejected(setting, expected):
    assert expected in config_error(BASE + f"defaults: {{{setting}}}\n")


def test_one_to_one_mapping_needs_as_many_source_classes_as_target_classes():
    huge = DatasetInfo("huge", "nowhere:load", 2000, 5000, 1000, 32, "synthetic", offline=True)
    backbone = BACKBONES.get("efficientnet_lite0")
    config = parse(BASE).jobs[0].config
    for name in ("rlm", "flm", "ilm"):
        problems = _infeasible(config, MAPPINGS.get(name), backbone, huge)
        assert problems == [f"mapping '{name}' is one-to-one and needs at least 2000 source classes, "
                            "but backbone 'efficientnet_lite0' has 1000"]
    for name in ("blm", "blmpp"):
        assert _infeasible(config, MAPPINGS.get(name), backbone, huge) == []
    assert _infeasible(config, MAPPINGS.get("ilm"), backbone, DATASETS.get("digits")) == []


# --------------------------------------------------------------------------------------- shipped suites, torch


def test_every_shipped_suite_parses():
    paths = sorted((REPO / "suites").glob("*.yaml"))
    assert paths, "no suites shipped under suites/"
    for path in paths:
        suite = load_suite(path)
        assert suite.jobs, path
        assert len({job.run_id for job in suite.jobs}) == len(suite.jobs), path


def test_importing_the_suite_module_does_not_import_torch():
    code = ("import sys, vrbench.suite; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------- known bugs


@pytest.mark.parametrize("value", [".nan", ".inf"])
def test_non_finite_numbers_are_config_errors(value):
    message = config_error(BASE + f"defaults: {{lr: {value}}}\n")
    assert message.startswith("x.yaml:8: ")


@pytest.mark.parametrize("where", ["grid", "match"])
def test_unhashable_axis_values_are_config_errors(where):
    if where == "grid":
        text = suite_text(mapping="[[ilm]]")
    else:
        text = BASE + "overrides:\n  - match: {mapping: [[ilm]]}\n    set: {epochs: 1}\n"
    message = config_error(text)
    assert "mapping names must be strings" in message


@pytest.mark.parametrize(("mapping", "setting"), [("ilm", "mapping_interval: 0"), ("blm", "lap: -1.0"),
                                                  ("blmpp", "topk_ratio: 0")])
def test_out_of_range_method_hyperparameters_are_rejected_before_running(mapping, setting):
    message = config_error(suite_text(mapping=f"[{mapping}]", extra=f"defaults: {{{setting}}}\n"))
    assert setting.split(":")[0] in message


def test_an_empty_subset_is_the_same_job_as_no_subset():
    plain = parse(BASE).jobs[0]
    empty = parse(BASE + "defaults: {subset: {}}\n").jobs[0]
    assert empty.run_id == plain.run_id


def test_a_duplicate_key_is_rejected():
    message = config_error(BASE + "defaults: {epochs: 3}\ndefaults: {lr: 0.1}\n")
    assert "x.yaml:9:" in message and "defaults" in message


# ------------------------------------------------------------------------------------------- numeric ranges


@pytest.mark.parametrize(("setting", "expected"), [
    ("gamma: -1", "gamma must be in (0, 1], got -1.0"),  # the learning rate would turn negative
    ("gamma: 0", "gamma must be in (0, 1], got 0.0"),
    ("momentum: 1", "momentum must be in [0, 1), got 1.0"),
    ("weight_decay: -0.1", "weight_decay must be at least 0, got -0.1"),
    ("canvas: 0", "canvas must be at least 1, got 0"),
    ("topk_ratio: 1.5", "topk_ratio must be in (0, 1], got 1.5"),
    ("mask_channels: 4", "mask_channels must be in [1, 3], got 4"),
    ("crop_margin: -3", "crop_margin must be at least 0, got -3"),
    ("warmup_lr: 0", "warmup_lr must be positive, got 0.0"),
    ("gpa_std: -1", "gpa_std must be positive, got -1.0"),
])
def test_numeric_settings_out_of_range_name_the_setting_file_and_line(setting: str, expected: str) -> None:
    message = config_error(BASE + f"overrides:\n  - match: {{dataset: digits}}\n    set: {{{setting}}}\n")
    assert message == f"x.yaml:{BASE.count(chr(10)) + 3}: {expected}"  # the line of the `set:` holding it


def test_every_numeric_setting_has_a_range_that_its_default_holds() -> None:
    from vrbench.suite import RANGES, known_params

    known = known_params()
    numeric = {k for k, v in known.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert numeric <= set(RANGES) and set(RANGES) <= set(known)
    assert all(RANGES[k].holds(known[k]) for k in numeric)
    assert parse(BASE + "defaults: {gamma: 1, momentum: 0, canvas: 100000}\n").jobs[0].config["canvas"] == 100000
