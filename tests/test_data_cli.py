"""`vrbench data ls / prepare / verify` and the suite pre-flight check, on fixture datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vrbench.data_cli import data_app
from vrbench.datasets.verify import verify_dataset, verify_for_suite
from vrbench.testing import write_animal_shapes, write_cifar100, write_coop_dataset, write_imagenet_family

runner = CliRunner()
OFFLINE_PROXY = "http://127.0.0.1:9"  # nothing listens there: every download fails at once, as with no network


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("VRBENCH_VERIFY_CHECKSUMS", "0")
    monkeypatch.setenv("VRBENCH_CONFIG", str(tmp_path / "no-config.yaml"))
    monkeypatch.delenv("VRBENCH_DATA", raising=False)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, OFFLINE_PROXY)
    monkeypatch.setenv("PIP_INDEX_URL", f"{OFFLINE_PROXY}/simple")


def _invoke(*args: str):
    return runner.invoke(data_app, list(args), catch_exceptions=False)


def test_ls_shows_states_and_where_it_looks(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_coop_dataset("dtd", root, per_class=(1, 1, 1))
    (root / "oxford_flowers" / "jpg").mkdir(parents=True)  # images without the split file: partial
    result = _invoke("ls", "--data-root", str(root))
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 5}
    assert "ready" in rows["dtd"] and "partial" in rows["flowers102"] and "missing" in rows["food101"]
    assert "ready" in rows["digits"]
    assert "from --data-root" in result.output and "VRBENCH_DATA" in result.output and "./data" in result.output


def test_ls_uses_the_environment_then_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"data_root: {tmp_path / 'configured'}\n")
    monkeypatch.setenv("VRBENCH_CONFIG", str(config))
    assert "from config file" in _invoke("ls").output
    monkeypatch.setenv("VRBENCH_DATA", str(tmp_path / "env"))
    assert "from $VRBENCH_DATA" in _invoke("ls").output


def test_verify_passes_a_complete_dataset_with_the_documented_counts(tmp_path: Path) -> None:
    # DTD at its real size (2,820 / 1,128 / 1,692 images, 47 classes), as tiny JPEGs
    write_coop_dataset("dtd", tmp_path, per_class=(60, 24, 36), image_size=(8, 8))
    result = _invoke("verify", "dtd", "--data-root", str(tmp_path), "--level", "decode")
    assert result.exit_code == 0, result.output
    assert "ok dtd" in result.output


def test_verify_reports_every_problem_at_once_with_path_and_fix(tmp_path: Path) -> None:
    folder = write_coop_dataset("eurosat", tmp_path, per_class=(2, 1, 1))
    split = json.loads((folder / "split_zhou_EuroSAT.json").read_text())
    missing = folder / "2750" / split["train"][0][0]
    missing.unlink()
    corrupt = folder / "2750" / split["test"][0][0]
    corrupt.write_bytes(b"not a jpeg")
    result = _invoke("verify", "eurosat", "--data-root", str(tmp_path))
    assert result.exit_code == 1
    out = result.output
    assert "train split has 20 images, documented size is 13500" in out  # wrong count
    assert "1 image(s) of the train split are missing" in out and str(missing) in out  # missing file
    assert "unreadable image" in out and str(corrupt) in out  # corrupt image
    assert out.count("fix:") >= 5  # every problem comes with its fix (3 counts + missing + corrupt)


def test_verify_decode_level_finds_a_truncated_jpeg(tmp_path: Path) -> None:
    folder = write_coop_dataset("dtd", tmp_path, per_class=(1, 1, 1), image_size=(64, 64))
    path = folder / "images" / json.loads((folder / "split_zhou_DescribableTextures.json").read_text())["val"][0][0]
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    headers = [p for p in verify_dataset("dtd", tmp_path, "headers") if "unreadable" in p.message]
    decoded = [p for p in verify_dataset("dtd", tmp_path, "decode") if "unreadable" in p.message]
    assert not headers and [p.path for p in decoded] == [str(path)]


def test_verify_points_at_a_doubly_extracted_folder(tmp_path: Path) -> None:
    write_coop_dataset("dtd", tmp_path / "dtd", per_class=(1, 1, 1))  # ends up in data/dtd/dtd/...
    problems = verify_dataset("dtd", tmp_path)
    assert problems and all("move the contents of" in p.fix for p in problems)


def test_verify_wrong_class_count_and_array_datasets(tmp_path: Path) -> None:
    write_coop_dataset("flowers102", tmp_path, per_class=(1, 1, 1), num_classes=7)
    assert any("7 classes, expected 102" in p.message for p in verify_dataset("flowers102", tmp_path))
    write_cifar100(tmp_path, n_train=100, n_test=100)
    messages = [p.message for p in verify_dataset("cifar100", tmp_path)]
    assert messages == ["train split has 100 images, documented size is 50000",
                        "test split has 100 images, documented size is 10000"]


def test_count_differences_are_errors_only_for_official_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_coop_dataset("dtd", tmp_path, per_class=(1, 1, 1), image_size=(8, 8))
    assert {p.severity for p in verify_dataset("dtd", tmp_path)} == {"warning"}  # checksums off: own files
    assert _invoke("verify", "dtd", "--data-root", str(tmp_path)).exit_code == 0
    monkeypatch.setenv("VRBENCH_VERIFY_CHECKSUMS", "1")
    assert {p.severity for p in verify_dataset("dtd", tmp_path)} == {"error"}
    assert _invoke("verify", "dtd", "--data-root", str(tmp_path)).exit_code == 1


def test_verify_checks_cifar100_md5_when_checksums_are_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar100(tmp_path, n_train=10, n_test=10)
    monkeypatch.setenv("VRBENCH_VERIFY_CHECKSUMS", "1")
    problems = verify_dataset("cifar100", tmp_path)
    assert len(problems) == 3 and all("differs from torchvision's" in p.message for p in problems)


def test_verify_for_suite_checks_each_dataset_once(tmp_path: Path) -> None:
    write_animal_shapes(tmp_path, per_class=1000 // 50)
    problems = verify_for_suite(["digits", "animal_shapes", "digits", "food101"], tmp_path)
    datasets = [p.dataset for p in problems]
    assert "digits" not in datasets and datasets.count("food101") == 2  # split file and image folder
    assert {p.dataset for p in problems if "documented size" in p.message} == {"animal_shapes"}


def test_prepare_without_network_is_one_line_per_dataset(tmp_path: Path) -> None:
    result = runner.invoke(data_app, ["prepare", "dtd", "cifar100", "--data-root", str(tmp_path)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 2 and all("no network" in line for line in lines), result.output
    assert "Traceback" not in result.output


def test_prepare_prints_manual_steps_where_no_download_exists(tmp_path: Path) -> None:
    result = _invoke("prepare", "imagenet", "abide", "--data-root", str(tmp_path))
    assert result.exit_code == 0
    assert f"{tmp_path}/imagenet/images/train/n*/" in result.output and "classnames.txt" in result.output
    assert "abide.hdf5" in result.output and "Phenotypic_V1_0b_preprocessed1.csv" in result.output


def test_prepare_says_ready_and_groups_expand(tmp_path: Path) -> None:
    write_imagenet_family("imagenet_r", tmp_path)
    result = _invoke("prepare", "imagenet_r", "offline", "--data-root", str(tmp_path), "--wheel",
                     str(tmp_path / "none.whl"))
    assert "imagenet_r: already in place" in result.output and "digits: already in place" in result.output
    assert "animal_shapes" in result.output  # the group includes it; the missing wheel is one line
    unknown = _invoke("verify", "dtdd", "--data-root", str(tmp_path))
    assert unknown.exit_code == 2 and "Did you mean 'dtd'?" in unknown.output


def test_a_job_with_download_and_no_network_gets_the_same_one_line(tmp_path: Path) -> None:
    from vrbench.engine.data import load_split
    from vrbench.errors import MissingResourceError

    # the engine runs `vrbench data prepare` before loading (loaders themselves never import prepare)
    with pytest.raises(MissingResourceError, match="^no network: could not download https://www.robots.ox.ac.uk"):
        load_split({"dataset": "dtd"}, "train", 32, tmp_path, download=True)


def test_fewshot_command_writes_checksummed_index_files(tmp_path: Path) -> None:
    write_coop_dataset("dtd", tmp_path, per_class=(3, 2, 1), image_size=(8, 8))
    result = _invoke("fewshot", "dtd", "--data-root", str(tmp_path), "--shots", "2", "--seeds", "1", "--seeds", "3")
    assert result.exit_code == 0, result.output
    written = sorted((tmp_path / "dtd" / "split_fewshot_vrbench").glob("*.json"))
    assert [p.name for p in written] == ["shot_2-seed_1.json", "shot_2-seed_3.json"]
    record = json.loads(written[0].read_text())
    assert len(record["train"]) == 2 * 47 and len(record["val"]) == 2 * 47 and len(record["sha256"]) == 64


def test_manual_dataset_with_images_still_prints_its_steps_offline(tmp_path: Path) -> None:
    (tmp_path / "stanford_cars" / "cars_train").mkdir(parents=True)
    result = _invoke("prepare", "stanfordcars", "--data-root", str(tmp_path))
    assert result.exit_code == 0 and "cars_train/" in result.output and "split file not fetched: no network" in \
        result.output
