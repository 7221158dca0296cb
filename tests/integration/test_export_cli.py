"""``edgeclf export``: the table, --json, exit codes and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from helpers.export import copy_run, listing, make_dense_run
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.runtime.manifest import Manifest


@pytest.fixture(scope="module")
def dense_run(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    return make_dense_run(tiny_run, tmp_path_factory.mktemp("dense-run-cli"))


@pytest.fixture
def run(dense_run: Path, tmp_path: Path) -> Path:
    """A private copy of a small real run: fast to convert."""
    return copy_run(dense_run, tmp_path / "run")


def _invoke(*args: str):
    return CliRunner().invoke(app, ["export", *map(str, args)])


def test_export_prints_the_table_and_writes_the_report(run: Path) -> None:
    result = _invoke(run, "--formats", "tflite-fp32,onnx-fp32")
    assert result.exit_code == 0, result.output
    for column in ("format", "status", "size MB", "accuracy", "agreement", "max |Δp|"):
        assert column in result.stdout
    assert "tflite-fp32" in result.stdout and "onnx-fp32" in result.stdout
    assert result.stdout.count("passed") == 2
    report = json.loads((run / "export_report.json").read_text())
    assert [r["format"] for r in report["results"]] == ["tflite-fp32", "onnx-fp32"]
    config = json.loads((run / "export_config.json").read_text())
    assert config["formats"] == ["tflite-fp32", "onnx-fp32"] and config["opset"] == 17
    assert {a.format for a in Manifest.load(run).artifacts} == {"tflite-fp32", "onnx-fp32"}


def test_json_output_and_a_failed_bound_exits_non_zero(run: Path) -> None:
    result = _invoke(run, "-f", "tflite-fp16", "--bounds", "tflite-fp16:max_abs_diff=0", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    (entry,) = report["results"]
    assert entry["status"] == "failed"
    assert entry["failures"][0].startswith("max |Δp| ") and entry["failures"][0].endswith("> bound 0")
    assert "error: not every format passed: tflite-fp16 (failed)" in result.stderr
    assert not (run / "model_tflite-fp16.tflite").exists()


def test_no_strict_keeps_the_failed_file_and_exits_zero(run: Path) -> None:
    result = _invoke(run, "-f", "tflite-fp16", "--bounds", "tflite-fp16:max_abs_diff=0", "--no-strict")
    assert result.exit_code == 0, result.output
    assert "failed" in result.stdout
    assert Manifest.load(run).artifact("tflite-fp16").status == "failed"
    assert "kept, marked failed" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--formats", "tflite-int4"), "unknown export format 'tflite-int4'; known: tflite-fp32, tflite-fp16"),
        (("--bounds", "tflite-int8:speed=1"), "unknown key 'speed'"),
        (("--bounds", "nonsense"), "expected FORMAT:key=value"),
        (("--calibration-data", "/nonexistent/calib", "-f", "tflite-int8"), "no such calibration folder"),
        (("--validate-on", "/nonexistent/photos"), "no such data folder"),
        (("--tflite-runtime-python", "/nonexistent/python"), "cannot verify with tflite-runtime 2.14 (no such file)"),
    ],
)
def test_bad_options_are_one_line_and_write_nothing(run: Path, args: tuple[str, ...], message: str) -> None:
    before = listing(run)
    result = _invoke(run, *args)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1], result.stderr
    assert "Traceback" not in result.output
    assert listing(run) == before


def test_missing_and_corrupt_run_folders_are_one_line(tmp_path: Path) -> None:
    result = _invoke(tmp_path / "nope")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {tmp_path / 'nope'}: no such run folder or manifest"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{ not json")
    result = _invoke(broken)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {broken / 'manifest.json'}: not readable JSON")
    assert listing(broken) == ["manifest.json"]


def test_validate_on_a_folder_of_classes_uses_all_its_images(run: Path) -> None:
    data = Path(Manifest.load(run).data["root"])
    # onnx-int8: its percentile calibration prints progress, which must not reach the JSON on stdout.
    result = _invoke(run, "-f", "onnx-int8", "--validate-on", data / "test", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    expected = sum(1 for p in (data / "test").rglob("*.jpg"))
    assert report["validation"]["images"] == expected
    assert report["validation"]["source"].endswith("(all images)")
