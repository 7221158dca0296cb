"""An int8 file whose uint8 sigmoid output cannot reach the unknown threshold is named at export."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclf.exporter.open_set_fit import unreachable_labels, unreachable_warning
from edgeclf.runtime.manifest import Artifact, InputSpec, Manifest, OpenSet, TensorInfo
from edgeclf.runtime.open_set import accepted, calibrated

# The cats-vs-dogs model of docs/runtime.md: temperature and threshold fitted at export.
TEMPERATURE, HIGH_THRESHOLD = 0.942177, 0.997982
UINT8_SIGMOID = TensorInfo("Identity", "uint8", (1, 1), scale=1 / 256, zero_point=0)  # TFLite's int8 sigmoid
FLOAT = TensorInfo("Identity", "float32", (1, 1))


def _manifest(threshold: float | None, activation: str = "sigmoid") -> Manifest:
    labels = ("cats", "dogs") if activation == "sigmoid" else ("cats", "dogs", "birds")
    open_set = OpenSet(temperature=TEMPERATURE, threshold=threshold) if threshold is not None else None
    return Manifest(
        labels=labels, input=InputSpec(32, 32), output_activation=activation, preset="default", open_set=open_set
    )


def _artifact(output: TensorInfo) -> Artifact:
    inputs = (TensorInfo("images", "uint8", (1, 32, 32, 3)),)
    return Artifact("tflite-int8", "int8", "m.tflite", 1, "0" * 64, "litert", inputs, (output,))


def test_second_label_above_the_uint8_ceiling_is_named():
    # 255/256 is the most the output can say for "dogs": its calibrated confidence stays below the threshold.
    top = calibrated(np.array([[1 / 256, 255 / 256]]), "sigmoid", TEMPERATURE)[0, 1]
    assert not accepted(np.array([top]), HIGH_THRESHOLD)[0]
    manifest = _manifest(HIGH_THRESHOLD)
    assert unreachable_labels(manifest, _artifact(UINT8_SIGMOID)) == ["dogs"]
    line = unreachable_warning(manifest, _artifact(UINT8_SIGMOID))
    assert line is not None and line.startswith("tflite-int8: its uint8 output") and "'dogs'" in line


@pytest.mark.parametrize(
    ("manifest", "output"),
    [
        (_manifest(0.9307), UINT8_SIGMOID),  # a threshold the ceiling reaches (the cars-vs-bikes model's)
        (_manifest(HIGH_THRESHOLD), FLOAT),  # a float output reaches any threshold below 1
        (_manifest(None), UINT8_SIGMOID),  # no open-set threshold fitted
        (_manifest(HIGH_THRESHOLD, "softmax"), TensorInfo("Identity", "uint8", (1, 3), scale=1 / 256)),
    ],
)
def test_no_warning_when_every_label_can_be_accepted(manifest, output):
    assert unreachable_labels(manifest, _artifact(output)) == []
    assert unreachable_warning(manifest, _artifact(output)) is None
