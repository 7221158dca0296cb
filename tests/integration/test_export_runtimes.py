"""A .tflite file is called compatible with a runtime only when it met every parity bound there.

The same int8 file gives different outputs in tflite-runtime 2.14 and in ai-edge-litert; each
runtime is judged by its own figures on the same validation images, recorded in the manifest, and a
runtime that misses a bound is marked incompatible with that bound as the reason.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from helpers.export import copy_run, make_dense_run, tflite_runtime_python

from edgeclf.exporter import Bounds, ExportConfig, export_run, get_format
from edgeclf.runtime.classifier import Classifier
from edgeclf.runtime.dataset import load_samples, reopen_from_manifest
from edgeclf.runtime.errors import ModelLoadError
from edgeclf.runtime.manifest import Manifest

QUIET = {"log": lambda _line: None}
TFLITE_RUNTIME = "tflite-runtime==2.14"


@pytest.fixture(scope="module")
def python() -> Path:
    found = tflite_runtime_python()
    if found is None:
        pytest.skip("no tflite-runtime 2.14 Python (.venv-tflite214 or $EDGECLF_TFLITE_RUNTIME_PYTHON)")
    return found


@pytest.fixture(scope="module")
def dense_run(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    return make_dense_run(tiny_run, tmp_path_factory.mktemp("runtimes-run"))


def test_each_runtime_gets_the_full_figures_on_the_same_images(dense_run: Path, python: Path, tmp_path: Path) -> None:
    run = copy_run(dense_run, tmp_path / "run")
    config = ExportConfig(formats=("tflite-int8", "tflite-fp32"), tflite_runtime_python=python)
    report = export_run(run, config, **QUIET)
    manifest = Manifest.load(run)
    for name in ("tflite-int8", "tflite-fp32"):
        artifact = manifest.artifact(name)
        checks = {c.runtime: c for c in artifact.runtimes}
        assert set(checks) == {"litert", TFLITE_RUNTIME}
        assert checks[TFLITE_RUNTIME].version == "2.14" and checks["litert"].version
        for check in checks.values():
            assert check.metrics["images"] == report.validation_count == artifact.validation["images"]
            assert {"agreement", "max_abs_diff", "accuracy_change"} <= set(check.metrics)
        # The format's own runtime is the validation the exporter always did.
        assert checks["litert"].metrics["max_abs_diff"] == artifact.validation["max_abs_diff"]
        assert (artifact.compatibility[TFLITE_RUNTIME] == "ok") == checks[TFLITE_RUNTIME].passed
    # float32 is the same arithmetic in both runtimes: it must pass there.
    assert {c.runtime: c for c in manifest.artifact("tflite-fp32").runtimes}[TFLITE_RUNTIME].passed


def test_a_runtime_that_misses_a_bound_is_marked_incompatible_with_the_bound(
    dense_run: Path, python: Path, tmp_path: Path
) -> None:
    """A real int8 file run in the real tflite-runtime 2.14, judged under a bound it cannot meet there.

    On these tiny models both runtimes happened to give identical outputs, so no bound splits them;
    the bound is made unmeetable for tflite-runtime alone (max |Δp| 0 vs Keras) to see the marking.
    """
    import keras

    from edgeclf.exporter.context import ConversionContext
    from edgeclf.exporter.parity import Reference, keras_scores
    from edgeclf.exporter.tflite import inspect_tflite

    run = copy_run(dense_run, tmp_path / "run")
    export_run(run, ExportConfig(formats=("tflite-int8",)), **QUIET)
    manifest = Manifest.load(run)
    folder = reopen_from_manifest(dict(manifest.data), manifest.labels)
    images = load_samples(folder.split("validation"), manifest.input)
    model = keras.models.load_model(run / "model.keras", compile=False)
    scores = keras_scores(model, images.images, manifest.output_activation)
    unmeetable = Bounds(0.0, max_abs_diff=0.0)
    reference = Reference(images.images, images.labels, scores, bounds={"tflite-int8": unmeetable})
    ctx = ConversionContext(
        model=model,
        manifest=manifest,
        batch_size=1,
        opset=17,
        target=None,
        work_dir=tmp_path,
        tflite_runtime_python=python,
        load_calibration=lambda _count=None: images.images,
    )
    inspection = inspect_tflite(run / "model_tflite-int8.tflite", ctx, get_format("tflite-int8"), reference)
    (check,) = inspection.runtimes
    assert check.runtime == TFLITE_RUNTIME and check.status == "failed"
    assert check.metrics["images"] == len(images.images) and check.metrics["max_abs_diff"] > 0
    assert check.failures[0].startswith("max |Δp| ") and check.failures[0].endswith("> bound 0")
    verdict = inspection.compatibility[TFLITE_RUNTIME]
    assert verdict.startswith("misses the parity bounds in tflite-runtime 2.14 (max |Δp|")
    assert inspection.compatibility["litert"] == "ok"
    # What edgeclf then does with such a mark: refuse that runtime with the reason.
    marked = dataclasses.replace(
        manifest.artifact("tflite-int8"), compatibility=dict(inspection.compatibility), runtimes=(check,)
    )
    manifest.without_artifact("tflite-int8").with_artifact(marked).save(run)
    with pytest.raises(ModelLoadError, match="misses the parity bounds"):
        Classifier.from_run(run, format="tflite-int8", backend="tflite-runtime")


def test_without_a_tflite_runtime_python_nothing_is_declared_compatible(dense_run: Path, tmp_path: Path) -> None:
    run = copy_run(dense_run, tmp_path / "run")
    # A Python that exists but has no tflite-runtime is refused up front when named explicitly, so
    # leave it out and make sure the automatic lookup finds none either.
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("EDGECLF_TFLITE_RUNTIME_PYTHON", raising=False)
        patch.chdir(tmp_path)
        export_run(run, ExportConfig(formats=("tflite-fp32",)), **QUIET)
    artifact = Manifest.load(run).artifact("tflite-fp32")
    assert artifact.compatibility[TFLITE_RUNTIME].startswith("not validated")
    assert {c.runtime: c.status for c in artifact.runtimes} == {"litert": "passed", TFLITE_RUNTIME: "skipped"}
