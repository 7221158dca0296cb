"""Each exported file fits its own "unknown" threshold on its own scores; ``--threshold auto`` uses it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from helpers.export import copy_run, write_other_kind_photos

from edgeclf.exporter import ExportConfig, export_run
from edgeclf.exporter.open_set_fit import unreachable_labels
from edgeclf.runtime.classifier import Classifier, ClassifierOptions
from edgeclf.runtime.embedded import read_embedded_manifest
from edgeclf.runtime.manifest import Manifest, OpenSet
from edgeclf.runtime.open_set import accepted, calibrated
from edgeclf.runtime.preprocess import preprocess

TARGET = 0.25


@pytest.fixture(scope="module")
def others(tmp_path_factory) -> Path:
    """Photos of other kinds: noise and colour gradients."""
    return write_other_kind_photos(tmp_path_factory.mktemp("others-per-file"), 20, (40, 40), seed=11)


@pytest.fixture(scope="module")
def exported(tiny_run, others, tmp_path_factory) -> Path:
    run = copy_run(tiny_run, tmp_path_factory.mktemp("per-file-open-set"))
    config = ExportConfig(formats=("tflite-int8", "onnx-fp32"), unknown_data=others, false_accept=TARGET)
    report = export_run(run, config, log=lambda line: None)
    assert all(r.file for r in report.results), report.to_dict()
    return run


def _own_confidences(run: Path, fmt: str, open_set: OpenSet, folder: Path) -> np.ndarray:
    manifest = Manifest.load(run)
    with Classifier.open(run, ClassifierOptions(format=fmt)) as clf:
        raw = np.concatenate([clf.scores(preprocess(p, manifest.input)[None]) for p in sorted(folder.iterdir())])
    return calibrated(raw, manifest.output_activation, open_set.temperature).max(axis=1)


@pytest.mark.parametrize("fmt", ["tflite-int8", "onnx-fp32"])
def test_each_file_records_a_threshold_fitted_on_its_own_scores(exported, others, fmt):
    manifest = Manifest.load(exported)
    artifact = manifest.artifact(fmt)
    own = artifact.open_set
    assert own is not None and own.target_false_accept == TARGET
    assert unreachable_labels(manifest, artifact) == []  # every label can still be answered
    # The recorded false-accept rate is the one this very file gives on the photos of other kinds.
    conf = _own_confidences(exported, fmt, own, others)
    assert own.measured["false_accept"] == pytest.approx(float(np.mean(accepted(conf, own.threshold))), abs=1e-6)
    if "capped_from" not in own.measured:
        assert own.measured["false_accept"] <= TARGET
    assert read_embedded_manifest(exported / artifact.file).open_set == own
    assert manifest.open_set is not None  # the Keras figure stays, for reference and older runtimes


def test_threshold_auto_uses_the_loaded_files_own_threshold(exported, others):
    manifest = Manifest.load(exported)
    own = manifest.artifact("tflite-int8").open_set
    with Classifier.open(exported, ClassifierOptions(format="tflite-int8", unknown=True)) as clf:
        assert clf.open_set == own
        conf = _own_confidences(exported, "tflite-int8", own, others)
        labels = [clf.classify(p)[0].label for p in sorted(others.iterdir())]
    assert [label == "unknown" for label in labels] == list(~accepted(conf, own.threshold))


def test_a_manifest_without_per_file_thresholds_falls_back_to_the_keras_one(exported, tmp_path):
    run = copy_run(exported, tmp_path / "old")
    data = json.loads((exported / "manifest.json").read_text())
    for entry in data["artifacts"]:
        entry.pop("open_set", None)
    (run / "manifest.json").write_text(json.dumps(data))
    for artifact in Manifest.load(exported).artifacts:
        (run / artifact.file).write_bytes((exported / artifact.file).read_bytes())
    manifest = Manifest.load(run)
    keras = manifest.open_set
    with Classifier.open(run, ClassifierOptions(format="onnx-fp32", unknown=True)) as clf:
        assert clf.open_set == keras
