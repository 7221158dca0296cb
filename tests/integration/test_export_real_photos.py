"""Slow: a default-preset model trained on the real cars-vs-bikes photos, exported to every format and
validated on the photos' test split (skips when the photos are absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.paths import REAL_PHOTOS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (REAL_PHOTOS / "test").is_dir():
        pytest.skip(f"real photos not found at {REAL_PHOTOS} (set EDGECLF_REAL_PHOTOS)")
    pytest.importorskip("tensorflow")
    from edgeclf.trainer.train import TrainConfig, train

    out = tmp_path_factory.mktemp("real-export") / "run"
    return train(TrainConfig(data=str(REAL_PHOTOS), preset="default", out=str(out), epochs=8, seed=0, verbose=0))


def test_every_format_of_a_real_model_passes_on_the_test_photos(real_run: Path) -> None:
    from helpers.export import tflite_runtime_python

    from edgeclf.exporter import ExportConfig, export_run, format_names
    from edgeclf.runtime.manifest import Manifest

    config = ExportConfig(validate_on=REAL_PHOTOS / "test", tflite_runtime_python=tflite_runtime_python())
    report = export_run(real_run, config, log=print)
    assert report.validation_count == sum(1 for p in (REAL_PHOTOS / "test").rglob("*") if p.is_file())
    assert report.calibration_count == min(300, 400)  # sampled from the 400 training photos
    assert {r.format: r.status for r in report.results} == dict.fromkeys(format_names(), "passed"), [
        (r.format, r.failures, r.message) for r in report.results
    ]
    assert report.keras_accuracy is not None and report.keras_accuracy > 0.6  # a model that learned something
    manifest = Manifest.load(real_run)
    sizes = {a.format: a.size_bytes for a in manifest.artifacts}
    # Quantisation shrinks the file: int8 < fp16 < fp32 for both runtimes.
    assert sizes["tflite-int8"] < sizes["tflite-fp16"] < sizes["tflite-fp32"]
    assert sizes["onnx-int8"] < sizes["onnx-fp32"]
    for artifact in manifest.artifacts:
        assert artifact.validation["images"] == report.validation_count
