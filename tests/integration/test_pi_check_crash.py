"""pi-check on a file that really crashes tflite-runtime 2.14 on aarch64 (docs/stack.md).

A full-int8 model whose Dense layer is quantised per channel with an all-zero bias (the converter
drops it) segfaults tflite-runtime 2.14's aarch64 kernel in ``invoke()`` when a batch is run. Unmarked,
the check must FAIL and name the crash; marked incompatible by the exporter, edgeclf must refuse
it and the check must pass, confirming the mark by running the file raw.

Slow: builds the tflite-runtime flavour of the emulated Pi on first use (``.cache/pi``) and runs
qemu. Needs TensorFlow (to make the file), qemu-user-static (installed by pi/emulator.py when
missing, as root) and the package registries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.backends import get_backend
from edge_runtime.embedded import append_tflite_metadata
from edge_runtime.fileio import sha256_file
from edge_runtime.manifest import Artifact, InputSpec, Manifest
from exporter.formats import Quantization

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
MARK = "per-channel int8 Dense without bias crashes tflite-runtime 2.14 on aarch64 (Raspberry Pi) in invoke()"


def _crashing_run(out: Path, compatibility: dict[str, str]) -> Path:
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


def _pi_check(run: Path, tmp_path: Path) -> tuple[int, str, dict]:
    photos = tmp_path / "photos" / "any"
    photos.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.full((40, 50, 3), 60 * i, dtype=np.uint8)).save(photos / f"{i}.png")
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "pi" / "check.py"),
            "--run",
            str(run),
            "--images",
            str(photos.parent),
            "--flavour",
            "tflite-runtime",
            "--tests",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    report = json.loads((Path(os.environ.get("PI_CACHE", ROOT / ".cache" / "pi")) / "report.json").read_text())
    return done.returncode, done.stdout + done.stderr, report


def _verdict(report: dict) -> dict:
    return next(v for v in report["verdicts"] if v["format"] == "tflite-int8" and v["backend"] == "tflite-runtime")


def test_an_unmarked_file_that_crashes_the_pi_runtime_fails_the_check(tmp_path):
    run = _crashing_run(tmp_path / "run", compatibility={})
    code, output, report = _pi_check(run, tmp_path)
    verdict = _verdict(report)
    assert code == 1, output[-3000:]
    assert not verdict["passed"]
    assert verdict["pi"]["status"] == "crashed" and "SIGSEGV" in verdict["pi"]["message"], verdict
    assert "CRASH" in output


def test_a_file_marked_incompatible_is_refused_and_the_mark_confirmed(tmp_path):
    run = _crashing_run(tmp_path / "run", compatibility={"litert": "ok", "tflite-runtime==2.14": MARK})
    code, output, report = _pi_check(run, tmp_path)
    verdict = _verdict(report)
    assert code == 0, output[-3000:]
    assert verdict["passed"] and verdict["pi"]["status"] == "refused"
    assert verdict["raw"]["verdict"].startswith("confirmed: crashes"), verdict["raw"]
