"""What an export leaves behind when something goes wrong, and how runtime incompatibilities are handled."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from helpers.export import copy_run, listing, make_dense_run, tflite_runtime_python

from edgeclf.exporter import ExportConfig, all_formats, export_run, get_format
from edgeclf.exporter.formats import INT8_BOUNDS, ExportFormat
from edgeclf.exporter.tflite import convert_tflite, per_channel_dense_without_bias
from edgeclf.runtime.classifier import Classifier
from edgeclf.runtime.errors import (
    DatasetError,
    EdgeclfError,
    ExportError,
    ManifestError,
    ModelLoadError,
    UnknownNameError,
)
from edgeclf.runtime.manifest import InputSpec, Manifest
from edgeclf.runtime.runlock import LOCK_NAME

QUIET = {"log": lambda _line: None}
# How the static check and a real tflite-runtime 2.14 load each name the refused operator.
V12 = r"FULLY_CONNECTED( v|' version ')12"


@pytest.fixture(scope="module")
def dense_run(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    return make_dense_run(tiny_run, tmp_path_factory.mktemp("dense-run"))


@pytest.fixture
def run(dense_run: Path, tmp_path: Path) -> Path:
    """A private copy of the small dense run: fast to convert, a real trained model."""
    return copy_run(dense_run, tmp_path / "run")


@pytest.fixture
def temporary_format(monkeypatch: pytest.MonkeyPatch):
    """Register a format for one test only."""
    import edgeclf.exporter.formats as registry

    def add(fmt: ExportFormat) -> ExportFormat:
        monkeypatch.setitem(registry.FORMATS, fmt.name, fmt)
        return fmt

    return add


def _crashing_export(ctx, fmt):
    """A real conversion that dies after writing part of its output (as a converter killed halfway)."""
    converted = convert_tflite(ctx, get_format("tflite-fp32"))
    (ctx.work_dir / "half-written.tflite").write_bytes(converted.data[: len(converted.data) // 2])
    raise ExportError(f"{fmt.name}: simulated converter crash after writing half a file")


def test_a_format_that_fails_midway_leaves_nothing_and_the_others_still_export(run: Path, temporary_format) -> None:
    broken = temporary_format(dataclasses.replace(get_format("tflite-fp32"), name="broken", export=_crashing_export))
    before = Manifest.load(run)
    report = export_run(run, ExportConfig(formats=("broken", "tflite-fp32")), **QUIET)
    statuses = {r.format: r.status for r in report.results}
    assert statuses == {"broken": "error", "tflite-fp32": "passed"}
    assert "simulated converter crash" in report.results[0].message
    assert report.exit_code == 1
    assert not (run / broken.file_name).exists()
    # No staging folder, no partial file (the run's lock file is the only hidden entry).
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == [LOCK_NAME]
    manifest = Manifest.load(run)
    assert [a.format for a in manifest.artifacts] == ["tflite-fp32"]
    assert manifest.labels == before.labels and manifest.input == before.input


def test_an_interrupted_export_leaves_the_run_as_it_was(run: Path, temporary_format) -> None:
    def interrupted(ctx, fmt):
        convert_tflite(ctx, get_format("tflite-fp32"))
        (ctx.work_dir / "partial").write_bytes(b"\0" * 100)
        raise KeyboardInterrupt

    temporary_format(dataclasses.replace(get_format("tflite-fp32"), name="interrupted", export=interrupted))
    before = listing(run)
    manifest_before = (run / "manifest.json").read_bytes()
    with pytest.raises(KeyboardInterrupt):
        export_run(run, ExportConfig(formats=("interrupted",)), **QUIET)
    assert listing(run) == before
    assert (run / "manifest.json").read_bytes() == manifest_before


def test_a_file_outside_its_bounds_is_not_written_when_strict(run: Path) -> None:
    # No fp16 file matches Keras to 0.0, no agreement exceeds 100%: the real validation must fail.
    impossible = {
        "tflite-fp16": dataclasses.replace(get_format("tflite-fp16").bounds, max_abs_diff=0.0),
        "tflite-int8": dataclasses.replace(INT8_BOUNDS, min_agreement=1.01),
    }
    report = export_run(run, ExportConfig(formats=("tflite-fp16", "tflite-int8"), bounds=impossible), **QUIET)
    fp16, int8 = report.results
    assert fp16.status == int8.status == "failed"
    assert fp16.failures[0].startswith("max |Δp| ") and fp16.failures[0].endswith("> bound 0")
    assert int8.failures[0].endswith("< bound 101.00%")
    # An int8 failure says what else to try, after every remedy was tried and recorded.
    assert "--calibration-data" in int8.message
    assert [a["variant"] for a in int8.attempts][:2] == ["default", "per-tensor"]  # tiny split: 1000 = 300 images
    assert "default, per-tensor" in int8.message
    assert all(a["failures"] for a in int8.attempts)
    assert fp16.file is None and int8.file is None and report.exit_code == 1
    assert not list(run.glob("model_*"))
    assert Manifest.load(run).artifacts == ()
    saved = json.loads((run / "export_report.json").read_text())
    assert [r["status"] for r in saved["results"]] == ["failed", "failed"]


def test_no_strict_keeps_the_file_marked_failed(run: Path) -> None:
    impossible = {"tflite-fp16": dataclasses.replace(get_format("tflite-fp16").bounds, max_abs_diff=0.0)}
    report = export_run(run, ExportConfig(formats=("tflite-fp16",), bounds=impossible, strict=False), **QUIET)
    assert report.results[0].status == "failed" and report.exit_code == 0
    artifact = Manifest.load(run).artifact("tflite-fp16")
    assert artifact.status == "failed"
    assert artifact.validation["failures"] == list(report.results[0].failures)
    assert (run / artifact.file).is_file()
    # The runtime does not pick a failed file on its own.
    with pytest.raises(ManifestError, match="no usable exported model"):
        Classifier.from_run(run)


# -- bad input: one error, nothing written -----------------------------------------------------


def test_model_not_matching_its_manifest_is_refused_before_anything_is_written(run: Path) -> None:
    manifest = Manifest.load(run)
    dataclasses.replace(manifest, input=InputSpec(64, 64)).save(run)  # the model takes 32x32
    before = listing(run)
    with pytest.raises(ManifestError, match=r"input shape \[None, 32, 32, 3\] does not match the manifest's 64x64x3"):
        export_run(run, ExportConfig(formats=("tflite-fp32",)), **QUIET)
    assert listing(run) == before


def test_labels_not_matching_the_model_output_are_refused(tiny_run_softmax: Path, tmp_path: Path) -> None:
    run = copy_run(tiny_run_softmax, tmp_path / "run")
    manifest = Manifest.load(run)
    dataclasses.replace(manifest, labels=manifest.labels[:2], output_activation="sigmoid").save(run)
    with pytest.raises(ManifestError, match="outputs 3 values but the manifest has 2 labels"):
        export_run(run, ExportConfig(formats=("tflite-fp32",)), **QUIET)


def test_corrupt_model_file_is_one_manifest_error(run: Path) -> None:
    (run / "model.keras").write_bytes(b"not a keras archive")
    with pytest.raises(ManifestError, match="not a Keras archive") as caught:
        export_run(run, ExportConfig(formats=("tflite-fp32",)), **QUIET)
    assert "not found" not in str(caught.value).lower()  # Keras' own words for a corrupt archive


def test_calibration_folder_without_readable_images_fails_before_any_file(run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "calib"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    (folder / "notes.txt").write_text("not an image")
    before = listing(run)
    with pytest.raises(DatasetError, match="no readable calibration images"):
        export_run(run, ExportConfig(formats=("tflite-fp32", "tflite-int8"), calibration_data=folder), **QUIET)
    assert listing(run) == before  # not even the fp32 file that needed no calibration


def test_unknown_format_lists_the_known_ones(run: Path) -> None:
    with pytest.raises(UnknownNameError) as caught:
        export_run(run, ExportConfig(formats=("tflite-int4",)), **QUIET)
    for name in all_formats():
        assert name in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; run as a normal user")
def test_unwritable_run_folder_is_refused(run: Path) -> None:
    run.chmod(0o555)
    try:
        with pytest.raises(ExportError, match="cannot write into the run folder"):
            export_run(run, ExportConfig(formats=("tflite-fp32",)), **QUIET)
    finally:
        run.chmod(0o755)


# -- runtime compatibility ---------------------------------------------------------------------


def test_dynamic_range_default_is_recorded_incompatible_with_tflite_runtime(run: Path) -> None:
    report = export_run(run, ExportConfig(formats=("tflite-dynamic",), tflite_runtime_python=None), **QUIET)
    assert report.results[0].status == "passed"  # fine for ai-edge-litert …
    artifact = Manifest.load(run).artifact("tflite-dynamic")
    assert artifact.op_versions["FULLY_CONNECTED"] >= 12
    verdict = artifact.compatibility["tflite-runtime==2.14"]
    assert re.search(V12, verdict)  # … and recorded as not loadable by tflite-runtime 2.14
    assert artifact.details["oldest_runtime"].startswith("ai-edge-litert")
    # The runtime refuses that combination with the exporter's reason instead of crashing.
    with pytest.raises(ModelLoadError, match=V12):
        Classifier.from_run(run, format="tflite-dynamic", backend="tflite-runtime")


def test_target_tflite_runtime_makes_loadable_files(run: Path) -> None:
    config = ExportConfig(
        formats=("tflite-dynamic", "tflite-int8"),
        target="tflite-runtime",
        tflite_runtime_python=tflite_runtime_python(),
    )
    report = export_run(run, config, **QUIET)
    assert [r.status for r in report.results] == ["passed", "passed"], [r.message for r in report.results]
    manifest = Manifest.load(run)
    for name in ("tflite-dynamic", "tflite-int8"):
        artifact = manifest.artifact(name)
        assert artifact.compatibility["tflite-runtime==2.14"] == "ok"
        assert artifact.op_versions["FULLY_CONNECTED"] < 12
        assert artifact.details["per_channel_dense"] is False
        assert artifact.details["oldest_runtime"] == "tflite-runtime 2.14"
    # No per-channel int8 Dense without bias: the aarch64 crash of tflite-runtime 2.14 cannot happen.
    assert per_channel_dense_without_bias((run / "model_tflite-int8.tflite").read_bytes()) == []


def test_a_format_that_cannot_be_made_for_the_target_is_refused_by_name(tiny_run: Path, tmp_path: Path) -> None:
    # A 1-unit sigmoid Dense on 1800 features: dynamic range quantises it per channel whatever the
    # flags say (FULLY_CONNECTED v12), so no tflite-dynamic file exists that tflite-runtime 2.14 loads.
    run = make_dense_run(tiny_run, tmp_path / "run", hidden=None)
    config = ExportConfig(
        formats=("tflite-dynamic", "tflite-int8"),
        target="tflite-runtime",
        tflite_runtime_python=tflite_runtime_python(),
    )
    report = export_run(run, config, **QUIET)
    refused, int8 = report.results
    assert refused.status == "refused" and int8.status == "passed"
    assert refused.message.startswith("tflite-dynamic cannot be made for tflite-runtime 2.14")
    assert re.search(V12, refused.message)
    assert "use tflite-int8 or tflite-fp16" in refused.message
    assert not (run / "model_tflite-dynamic.tflite").exists()
    assert [a.format for a in Manifest.load(run).artifacts] == ["tflite-int8"]
    assert report.exit_code == 1


def test_per_tensor_int8_is_recorded(run: Path) -> None:
    config = ExportConfig(formats=("tflite-int8", "onnx-int8"), per_channel=False)
    report = export_run(run, config, **QUIET)
    assert [r.status for r in report.results] == ["passed", "passed"]
    manifest = Manifest.load(run)
    assert manifest.artifact("tflite-int8").details["per_channel"] is False
    assert manifest.artifact("onnx-int8").details["per_channel"] is False


def test_unknown_format_in_registry_lookup() -> None:
    with pytest.raises(EdgeclfError, match="unknown export format 'x'; known: tflite-fp32"):
        get_format("x")
