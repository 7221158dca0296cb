"""A run trained with ``--resize crop`` keeps that mode everywhere: manifest, export parity (the
validation images go through the same crop), the file's embedded metadata and the runtime.

The demo photos are 4:3 (64×48) and the model 32×32, so a crop and a squash give different inputs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from typer.testing import CliRunner

from edgeclf.runtime.classifier import Classifier
from edgeclf.runtime.dataset import list_images
from edgeclf.runtime.manifest import InputSpec, Manifest
from edgeclf.runtime.preprocess import preprocess

FORMATS = ("tflite-fp32", "onnx-fp32")


@pytest.fixture(scope="module")
def crop_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeclf.cli import app
    from edgeclf.exporter import ExportConfig, export_run
    from edgeclf.trainer.demo_data import generate_demo_dataset

    root = tmp_path_factory.mktemp("crop-run")
    data = generate_demo_dataset(
        root / "demo", train_per_class=10, validation_per_class=4, test_per_class=4, image_size=(64, 48), seed=2
    )
    run = root / "run"
    args = ["train", "--data", str(data), "--preset", "dsnet", "--image-size", "32", "--epochs", "2"]
    result = CliRunner().invoke(app, [*args, "--batch-size", "8", "--resize", "crop", "--out", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    export_run(run, ExportConfig(formats=FORMATS), log=lambda _line: None)
    return run


def test_the_manifest_records_the_trained_mode_and_every_export_passes_parity(crop_run):
    manifest = Manifest.load(crop_run)
    assert manifest.input.resize == "crop"
    assert manifest.training["resize"] == "crop"
    for name in FORMATS:
        assert manifest.artifact(name).status == "passed"


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_runtime_crops_as_the_manifest_says(crop_run, fmt):
    manifest = Manifest.load(crop_run)
    photo = list_images(Path(manifest.training["data"]) / "test" / "cars")[0][0]
    cropped = preprocess(photo, manifest.input)
    squashed = preprocess(photo, InputSpec(32, 32, resize="squash"))
    assert not np.array_equal(cropped, squashed)  # the mode changes what the model sees

    file = crop_run / manifest.artifact(fmt).file
    bare = crop_run.parent / f"bare-{fmt}{file.suffix}"
    shutil.copy(file, bare)
    # From the run, and from a bare copy of the file away from it: the embedded metadata alone must say "crop".
    for classifier in (Classifier.from_run(crop_run, fmt), Classifier.from_file(bare)):
        assert classifier.spec.resize == "crop"
        np.testing.assert_array_equal(classifier.preprocess(photo), cropped)
