"""Export fits the "unknown" threshold on photos of other kinds; ``--threshold auto`` uses it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from helpers.export import copy_run, write_other_kind_photos
from typer.testing import CliRunner

from edgeclf.exporter import ExportConfig, export_run
from edgeclf.runtime.classifier import Classifier, ClassifierOptions
from edgeclf.runtime.embedded import read_embedded_manifest
from edgeclf.runtime.errors import EdgeclfError
from edgeclf.runtime.manifest import Manifest
from edgeclf.runtime.open_set import calibrated
from edgeclf.runtime.preprocess import preprocess

TARGET = 0.25


@pytest.fixture(scope="module")
def others(tmp_path_factory) -> Path:
    """Photos of other kinds: smooth colour gradients and noise, neither cars nor elephants."""
    return write_other_kind_photos(tmp_path_factory.mktemp("others"), 24, (48, 64), seed=3)


@pytest.fixture(scope="module")
def exported(tiny_run, others, tmp_path_factory) -> Path:
    run = copy_run(tiny_run, tmp_path_factory.mktemp("open-set-run"))
    config = ExportConfig(formats=("tflite-fp32",), unknown_data=others, false_accept=TARGET)
    report = export_run(run, config, log=lambda line: None)
    assert report.ok
    return run


def test_threshold_and_temperature_are_stored_and_embedded(exported, others):
    manifest = Manifest.load(exported)
    open_set = manifest.open_set
    assert open_set is not None and open_set.temperature > 0 and 0.0 <= open_set.threshold <= 1.0
    assert open_set.target_false_accept == TARGET
    assert open_set.measured["unknown_images"] == 24
    assert open_set.measured["false_accept"] <= TARGET
    # The file carries its own threshold, fitted on its own scores, so it works without the manifest too.
    own = manifest.artifact("tflite-fp32").open_set
    assert own is not None and own.measured["unknown_images"] == 24 and own.measured["false_accept"] <= TARGET
    embedded = read_embedded_manifest(exported / "model_tflite-fp32.tflite")
    assert embedded.open_set == own


def test_threshold_auto_says_unknown_exactly_below_the_threshold(exported, others):
    manifest = Manifest.load(exported)
    open_set = manifest.artifact("tflite-fp32").open_set
    with Classifier.open(exported, ClassifierOptions(format="tflite-fp32", unknown=True)) as clf:
        for path in sorted(others.iterdir()):
            raw = clf.scores(preprocess(path, manifest.input)[None])
            confidence = float(calibrated(raw, manifest.output_activation, open_set.temperature).max())
            (top,) = clf.classify(path)
            assert (top.label == "unknown") == (confidence < open_set.threshold)
            assert top.score == pytest.approx(confidence, abs=1e-6)


def test_cli_threshold_auto_prints_unknown(exported, others):
    from edgeclf.cli import app

    result = CliRunner().invoke(
        app, ["classify", str(exported), str(others), "--format", "tflite-fp32", "--threshold", "auto", "--json"]
    )
    assert result.exit_code == 0, result.output
    labels = [json.loads(line)["label"] for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(labels) == 24
    accepted = sum(label != "unknown" for label in labels)
    assert accepted <= int(TARGET * 24)  # the export chose the threshold on these very photos


def test_threshold_auto_without_a_fitted_threshold_is_one_clear_error(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "plain")
    export_run(run, ExportConfig(formats=("tflite-fp32",)), log=lambda line: None)
    with pytest.raises(EdgeclfError, match="--unknown-data"):
        Classifier.open(run, ClassifierOptions(format="tflite-fp32", unknown=True))
