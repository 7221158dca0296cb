"""Shared pieces of the exporter's integration tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def tflite_runtime_python() -> Path | None:
    """A Python with tflite-runtime 2.14 (``$EDGECLF_TFLITE_RUNTIME_PYTHON`` or ``.venv-tflite214``), if any."""
    value = os.environ.get("EDGECLF_TFLITE_RUNTIME_PYTHON")
    if value:
        return Path(value)
    local = REPO / ".venv-tflite214" / "bin" / "python"
    return local if local.is_file() else None


def copy_run(run: Path, target: Path) -> Path:
    """A private copy of a run folder (model, manifest, labels) so exports do not touch the shared fixture."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("model.keras", "manifest.json", "labels.txt"):
        shutil.copy2(run / name, target / name)
    return target


def listing(folder: Path) -> list[str]:
    """Every entry of a folder (hidden ones too, not the run's lock), sorted: what a failed export must not change."""
    return sorted(p.name for p in folder.iterdir() if p.name != ".edgeclf.lock")


def make_dense_run(tiny_run: Path, target: Path, *, hidden: int | None = 32) -> Path:
    """A copy of ``tiny_run`` whose model is a small Conv + Flatten + Dense network (the seed's shape).

    It converts in well under a second per format (the `default` preset takes seconds), and its
    Dense layer is big enough to be quantised: dynamic-range quantisation leaves small weight
    tensors in float, and this one becomes the per-channel FULLY_CONNECTED v12 that tflite-runtime
    2.14 refuses (docs/stack.md). Trained for a few epochs on the run's own data so its scores mean something.
    Its int8 and dynamic-range files (and ``tiny_run``'s) agreed with Keras on all 24 held-out
    images in every runtime (max |Δp| 0.025 at most, measured), so tests judge them by the
    exporter's own bounds.

    ``hidden=None`` puts the 1-unit sigmoid Dense straight on the 1800 flattened features: TF then
    quantises that Dense per channel in dynamic range whatever the converter flags say (FULLY_CONNECTED
    v12), so tflite-dynamic cannot be made for tflite-runtime 2.14 at all.
    """
    import keras

    from edgeclf.runtime.dataset import load_samples, reopen_from_manifest
    from edgeclf.runtime.manifest import Manifest

    run = copy_run(tiny_run, target)
    manifest = Manifest.load(run)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3), dtype="uint8", name="images")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    if hidden is not None:
        x = keras.layers.Dense(hidden, activation="relu")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="scores")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "binary_crossentropy")
    train = load_samples(reopen_from_manifest(dict(manifest.data), manifest.labels).split("train"), manifest.input)
    model.fit(train.images, train.labels, epochs=3, batch_size=8, verbose=0)
    model.save(run / "model.keras")
    return run


def write_other_kind_photos(folder: Path, count: int, size: tuple[int, int], seed: int) -> Path:
    """``count`` photos of other kinds (neither cars nor elephants) into ``folder``: noise and colour ramps."""
    import numpy as np
    from PIL import Image

    height, width = size
    rng = np.random.default_rng(seed)
    for i in range(count):
        if i % 2:
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        else:
            ramp = np.linspace(0, 255, width, dtype=np.float32)
            pixels = np.stack([np.tile(ramp, (height, 1)) * w for w in rng.random(3)], axis=-1).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"other_{i:02d}.png")
    return folder
