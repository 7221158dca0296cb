"""An int8 file that misses a bound is made again with the next known remedy, and the manifest says which.

Every conversion here is real (TFLite converter, onnxruntime.quantization) on a small trained model.
The failing first variant is made by a poor calibration set (four images) and a bound: one export
with an unreachable bound (kept with ``strict=False``) measures what each variant gives; a second
export gets a bound the first variant misses and a later one meets, so the exporter must walk the
list and keep that later one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from helpers.export import copy_run, make_dense_run, tflite_runtime_python

from edgeclf.exporter import Bounds, ExportConfig, export_run, get_format
from edgeclf.runtime.classifier import Classifier
from edgeclf.runtime.manifest import Manifest

QUIET = {"log": lambda _line: None}
INT8 = ("tflite-int8", "onnx-int8")
# Four calibration images: a poor calibration set the "more calibration images" remedy improves on.
FEW = 4


@pytest.fixture(scope="module")
def dense_run(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    return make_dense_run(tiny_run, tmp_path_factory.mktemp("variants-run"))


@pytest.fixture(scope="module")
def measured(dense_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    """What every variant of each int8 format measures on this model (no |Δp| can be 0, so all are tried)."""
    run = copy_run(dense_run, tmp_path_factory.mktemp("measure"))
    impossible = Bounds(min_agreement=0.0, max_abs_diff=0.0)
    config = ExportConfig(formats=INT8, strict=False, bounds=dict.fromkeys(INT8, impossible), calibration_images=FEW)
    report = export_run(run, config, **QUIET)
    return {r.format: list(r.attempts) for r in report.results}


@pytest.mark.parametrize("format_name", INT8)
def test_every_variant_is_tried_when_none_passes_and_the_first_is_kept(measured, format_name: str) -> None:
    attempts = measured[format_name]
    names = [a["variant"] for a in attempts]
    assert names[0] == "default"
    assert set(names) <= {v.name for v in get_format(format_name).variants}
    assert len(names) >= 2  # at least one remedy differs from the default on this run
    assert all(a["failures"] for a in attempts if "error" not in a)


@pytest.mark.parametrize("format_name", INT8)
def test_the_first_variant_that_meets_the_bound_is_kept_and_recorded(
    measured, dense_run: Path, tmp_path: Path, format_name: str
) -> None:
    attempts = [a for a in measured[format_name] if "error" not in a]
    first = attempts[0]["max_abs_diff"]
    better = sorted({a["max_abs_diff"] for a in attempts[1:] if a["max_abs_diff"] < first})
    assert better, f"no remedy of {format_name} gave a smaller max |Δp| than the default: {attempts}"
    bound = (better[-1] + first) / 2  # the default misses it, at least one later variant meets it
    expected = next(a["variant"] for a in attempts if a["max_abs_diff"] <= bound)
    assert expected != "default"

    run = copy_run(dense_run, tmp_path / "run")
    config = ExportConfig(
        formats=(format_name,),
        calibration_images=FEW,
        bounds={format_name: Bounds(min_agreement=0.0, max_abs_diff=bound)},
        tflite_runtime_python=tflite_runtime_python(),
    )
    report = export_run(run, config, **QUIET)
    (result,) = report.results
    assert result.status == "passed", result.failures
    assert result.variant == expected
    assert result.attempts[0]["variant"] == "default"
    assert result.attempts[0]["failures"] and "max |Δp|" in result.attempts[0]["failures"][0]
    assert result.attempts[-1]["variant"] == expected and not result.attempts[-1]["failures"]
    artifact = Manifest.load(run).artifact(format_name)
    assert artifact.details["variant"] == expected
    assert [a["variant"] for a in artifact.details["variants_tried"]] == [a["variant"] for a in result.attempts]
    assert artifact.validation["max_abs_diff"] <= bound
    # The file on disk is the kept variant: run it again and find the same figure.
    with Classifier.from_run(run, format=format_name) as classifier:
        assert classifier.backend_name == get_format(format_name).backend
    kept = next(a for a in measured[format_name] if a["variant"] == expected)
    assert artifact.validation["max_abs_diff"] == pytest.approx(kept["max_abs_diff"], abs=1e-6)
    # What the converter reports about the file is what the kept variant asks for.
    fmt = get_format(format_name)
    variant = next(v for v in fmt.variants if v.name == expected)
    per_channel = fmt.quantization.per_channel if variant.per_channel is None else variant.per_channel
    assert artifact.details["per_channel"] is per_channel
    assert artifact.details["calibration_method"] == (variant.method or fmt.quantization.method)
    if format_name == "onnx-int8":
        assert bool(artifact.details["float_nodes"]) is variant.float_ends


def test_tflite_float_ends_leaves_the_stem_and_the_head_in_float(dense_run: Path, tmp_path: Path) -> None:
    """The last TFLite remedy (ai-edge-quantizer): stem convolution, last Dense and its activation in float."""
    import dataclasses

    import keras
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from edgeclf.exporter.context import ConversionContext
    from edgeclf.exporter.formats import Calibration, apply_variant
    from edgeclf.exporter.tflite import convert_tflite
    from edgeclf.runtime.dataset import load_samples, reopen_from_manifest

    manifest = Manifest.load(dense_run)
    folder = reopen_from_manifest(dict(manifest.data), manifest.labels)
    images = load_samples(folder.split("train"), manifest.input).images
    model = keras.models.load_model(dense_run / "model.keras", compile=False)
    fmt = get_format("tflite-int8")
    variant = next(v for v in fmt.variants if v.float_ends)
    fmt = dataclasses.replace(fmt, quantization=apply_variant(fmt.quantization, variant, Calibration(images=16)))
    ctx = ConversionContext(model, manifest, 1, 17, None, tmp_path, None, lambda _count=None: images)
    converted = convert_tflite(ctx, fmt)
    assert len(converted.details["float_layers"]) == 3  # the stem, the head and its sigmoid
    assert converted.details["quantizer"].startswith("ai-edge-quantizer ")

    interpreter = Interpreter(model_content=converted.data)
    tensors = interpreter.get_tensor_details()
    weights = [
        (op["op_name"], tensors[op["inputs"][1]]["dtype"])
        for op in interpreter._get_ops_details()
        if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED")
    ]
    # The stem convolution, the hidden Dense (int8) and the 1-unit head.
    assert weights == [("CONV_2D", np.float32), ("FULLY_CONNECTED", np.int8), ("FULLY_CONNECTED", np.float32)]
    assert interpreter.get_input_details()[0]["dtype"] == np.uint8

    path = tmp_path / fmt.file_name
    path.write_bytes(converted.data)
    with Classifier.from_file(path, backend="litert") as classifier:
        scores = classifier.scores(images[:1])
    expected = np.asarray(model(images[:1], training=False))[0, 0]
    assert abs(float(scores[0, 1]) - float(expected)) < 0.05  # float ends around the int8 middle
