"""A real model file that crashes tflite-runtime 2.14 on aarch64 (docs/stack.md), for the Pi tests.

A full-int8 model whose Dense layer is quantised per channel with an all-zero bias (the converter
drops it) segfaults tflite-runtime 2.14's aarch64 kernel in ``invoke()`` when a batch is run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeclf.exporter.formats import Quantization
from edgeclf.runtime.backends import get_backend
from edgeclf.runtime.embedded import append_tflite_metadata
from edgeclf.runtime.fileio import sha256_file
from edgeclf.runtime.manifest import Artifact, InputSpec, Manifest


def crashing_run(out: Path, compatibility: dict[str, str]) -> Path:
    """A run folder whose full-int8 file segfaults tflite-runtime 2.14 on aarch64, marked with ``compatibility``.

    Its Dense layer is untrained: an all-zero bias the converter drops, and a dynamic batch.
    """
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3), dtype="uint8", name="images")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(8, activation="relu")(x)  # untrained: all-zero bias, dropped by the converter
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="scores")(x))
    calibration = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)

    converter = tf.lite.TFLiteConverter.from_keras_model(model)  # dynamic batch: the crashing path
    representative = lambda: ([calibration[i : i + 1]] for i in range(16))  # noqa: E731
    # Per-channel Dense weights, as the exporter makes them for ai-edge-litert: the crashing kernel.
    Quantization.int8().apply_to_converter(converter, representative, per_channel_dense=True)

    manifest = Manifest(labels=("bikes", "cars"), input=InputSpec(32, 32), output_activation="sigmoid", preset="t")
    out.mkdir()
    file = out / "model_tflite-int8.tflite"
    file.write_bytes(append_tflite_metadata(converter.convert(), manifest.to_embedded()))
    session = get_backend("litert").load(file)  # tensors as the runtime reads them back
    artifact = Artifact(
        "tflite-int8", "int8", file.name, file.stat().st_size, sha256_file(file), "litert",
        session.inputs, session.outputs, compatibility=compatibility,
    )  # fmt: skip
    manifest.with_artifact(artifact).save(out)
    return out
