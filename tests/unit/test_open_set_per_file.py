"""Each exported file gets its own "unknown" threshold, fitted on its own scores, recorded per artifact."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgeclf.exporter.open_set_fit import extreme_scores, fit_on_scores, unreachable_labels
from edgeclf.runtime.errors import ManifestError
from edgeclf.runtime.manifest import Artifact, InputSpec, Manifest, OpenSet, TensorInfo
from edgeclf.runtime.open_set import accepted, calibrated

UINT8_SIGMOID = TensorInfo("Identity", "uint8", (1, 1), scale=1 / 256, zero_point=0)  # TFLite's int8 sigmoid
TARGET = 0.05


def _uint8_sigmoid(p_second: np.ndarray) -> np.ndarray:
    """What TFLite's uint8 sigmoid output says for these float probabilities: steps of 1/256, at most 255/256."""
    q = np.clip(np.round(p_second * 256), 0, 255) / 256
    return np.stack([1 - q, q], axis=1).astype(np.float32)


def _confident_model(seed: int = 0):
    """Float scores of a confident two-class model: most own photos far past 255/256, others spread lower."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], 80)
    margin = rng.normal(6.0, 3.0, len(labels))  # logits of the right label; a few are wrong (margin < 0)
    z = np.where(labels == 1, margin, -margin)
    unknown_z = rng.normal(0.0, 5.0, 200)  # about a quarter of them past 255/256 either way
    to_scores = lambda z: np.stack([1 / (1 + np.exp(z)), 1 / (1 + np.exp(-z))], axis=1)  # noqa: E731
    return to_scores(z), labels, to_scores(unknown_z)


def _artifact(open_set: OpenSet | None) -> Artifact:
    inputs = (TensorInfo("images", "uint8", (1, 32, 32, 3)),)
    return Artifact(
        "tflite-int8", "int8", "m.tflite", 1, "0" * 64, "litert", inputs, (UINT8_SIGMOID,), open_set=open_set
    )


def _manifest(open_set: OpenSet | None, artifact: Artifact | None = None) -> Manifest:
    return Manifest(
        labels=("cats", "dogs"),
        input=InputSpec(32, 32),
        output_activation="sigmoid",
        preset="default",
        open_set=open_set,
        artifacts=(artifact,) if artifact else (),
    )


def test_a_file_whose_scores_saturate_gets_a_threshold_it_can_reach():
    known, labels, unknown = _confident_model()
    keras = fit_on_scores("sigmoid", known, labels, unknown, TARGET, "others")
    file_known, file_unknown = _uint8_sigmoid(known[:, 1]), _uint8_sigmoid(unknown[:, 1])
    # The Keras threshold is out of the uint8 file's reach for the second label: every "dog" is turned away.
    keras_only = _manifest(keras)
    assert unreachable_labels(keras_only, _artifact(None)) == ["dogs"]

    extremes = extreme_scores("sigmoid", UINT8_SIGMOID)
    own = fit_on_scores("sigmoid", file_known, labels, file_unknown, TARGET, "others", extremes)
    assert unreachable_labels(keras_only, _artifact(own)) == []
    conf = calibrated(file_known, "sigmoid", own.temperature)
    kept = accepted(conf.max(axis=1), own.threshold)
    assert kept[labels == 1].any() and kept[labels == 0].any()
    # Measured on the file's own scores: what the lowered threshold costs on the photos of other kinds.
    assert own.measured["capped_from"] > own.threshold
    unknown_conf = calibrated(file_unknown, "sigmoid", own.temperature).max(axis=1)
    assert own.measured["false_accept"] == pytest.approx(float(np.mean(accepted(unknown_conf, own.threshold))))
    assert own.measured["false_reject"] == pytest.approx(float(np.mean(~kept)), abs=1e-6)


def test_a_reachable_threshold_is_left_where_the_target_puts_it():
    known, labels, unknown = _confident_model()
    unknown = np.stack([1 - unknown[:, 1] * 0.5 - 0.25, unknown[:, 1] * 0.5 + 0.25], axis=1)  # never past 0.75
    file_known, file_unknown = _uint8_sigmoid(known[:, 1]), _uint8_sigmoid(unknown[:, 1])
    extremes = extreme_scores("sigmoid", UINT8_SIGMOID)
    capped = fit_on_scores("sigmoid", file_known, labels, file_unknown, TARGET, "others", extremes)
    free = fit_on_scores("sigmoid", file_known, labels, file_unknown, TARGET, "others")
    assert capped == free and "capped_from" not in capped.measured
    assert capped.measured["false_accept"] <= TARGET


def test_artifact_open_set_survives_json_and_old_entries_without_it_still_load():
    own = OpenSet(temperature=0.9, threshold=0.97, target_false_accept=0.05, measured={"false_accept": 0.04})
    keras = OpenSet(temperature=0.94, threshold=0.998)
    manifest = _manifest(keras, _artifact(own))
    loaded = Manifest.from_dict(manifest.to_dict())
    assert loaded.artifacts[0].open_set == own and loaded.open_set == keras
    old = manifest.to_dict()
    del old["artifacts"][0]["open_set"]
    assert Manifest.from_dict(old).artifacts[0].open_set is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("0.97", "artifact entry: field 'open_set' should be an object"),
        ({"temperature": "hot", "threshold": 0.9}, "field 'temperature' should be a number"),
        ({"temperature": 1.0, "threshold": 2.0}, "threshold must be between 0 and 1"),
        ({"temperature": 1.0, "measured": [1]}, "field 'measured' should be an object"),
        ({"temperature": 1.0, "version": 9}, "open_set version 9 is not supported"),
    ],
)
def test_a_bad_artifact_open_set_is_one_manifest_error(entry, message):
    data = _manifest(None, _artifact(None)).to_dict()
    data["artifacts"][0]["open_set"] = entry
    with pytest.raises(ManifestError, match=message) as raised:
        Manifest.from_dict(data)
    assert "\n" not in str(raised.value)


def test_artifact_without_a_threshold_is_not_preferred_by_the_warning():
    keras = OpenSet(temperature=0.94, threshold=0.9307)  # reachable by 255/256
    no_threshold = dataclasses.replace(keras, threshold=None)
    assert unreachable_labels(_manifest(keras), _artifact(no_threshold)) == []
