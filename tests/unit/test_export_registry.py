"""The exporter's registry, bounds and config: no TensorFlow needed."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from edgeclf.exporter import Bounds, Calibration, ExportConfig, Quantization, all_formats, format_names, get_format
from edgeclf.exporter.config import parse_bounds
from edgeclf.exporter.formats import FP16_BOUNDS, FP32_BOUNDS, INT8_BOUNDS, Variant, apply_variant
from edgeclf.runtime.errors import ConfigError, UnknownNameError

METRICS = {"agreement": 0.99, "max_abs_diff": 0.004, "accuracy_change": -0.005}


def test_the_six_formats_of_the_issue_are_registered() -> None:
    assert format_names() == ("tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8", "onnx-fp32", "onnx-int8")
    files = {name: fmt.file_name for name, fmt in all_formats().items()}
    assert files["tflite-int8"] == "model_tflite-int8.tflite"
    assert files["onnx-fp32"] == "model_onnx-fp32.onnx"
    assert {fmt.backend for fmt in all_formats().values()} == {"litert", "onnxruntime"}


@pytest.mark.parametrize(
    ("name", "precision", "kind", "bounds"),
    [
        ("tflite-fp32", "fp32", "none", FP32_BOUNDS),
        ("tflite-fp16", "fp16", "fp16", FP16_BOUNDS),
        ("tflite-dynamic", "dynamic", "dynamic", INT8_BOUNDS),
        ("tflite-int8", "int8", "int8", INT8_BOUNDS),
        ("onnx-fp32", "fp32", "none", FP32_BOUNDS),
        ("onnx-int8", "int8", "int8", INT8_BOUNDS),
    ],
)
def test_each_format_has_its_precision_quantisation_and_bounds(name, precision, kind, bounds) -> None:
    fmt = get_format(name)
    assert (fmt.precision, fmt.quantization.kind, fmt.bounds) == (precision, kind, bounds)
    assert fmt.quantization.needs_calibration == (kind == "int8")


def test_unknown_format_names_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown export format 'tflite-int4'; known: tflite-fp32, .*onnx-int8"):
        get_format("tflite-int4")


def test_quantisation_presets_are_named_constructors() -> None:
    assert Quantization.fp32() == Quantization("none")
    assert Quantization.int8().calibration == Calibration()
    own = Calibration(images=50, seed=3)
    int8 = Quantization.int8(own, per_channel=False)
    assert int8.calibration is own and int8.per_channel is False
    assert Quantization.dynamic().calibration is None
    # Min/max first (seconds); percentile, which rescued a file min/max left below its bound on the
    # real photos, is the first remedy (it costs minutes of histograms, so only when needed).
    assert get_format("onnx-int8").quantization.method == "minmax"
    assert [v.method for v in get_format("onnx-int8").variants[:3]] == [None, "percentile", "entropy"]
    assert get_format("tflite-int8").quantization.method == "minmax"


def test_default_bounds_are_the_issues() -> None:
    assert (FP32_BOUNDS.min_agreement, FP32_BOUNDS.max_abs_diff) == (1.0, 1e-4)
    assert (FP16_BOUNDS.min_agreement, FP16_BOUNDS.max_abs_diff) == (0.995, 3e-2)
    assert (INT8_BOUNDS.min_agreement, INT8_BOUNDS.max_accuracy_drop) == (0.98, 1.0)


def test_bounds_report_the_measured_value_next_to_the_bound() -> None:
    assert INT8_BOUNDS.check(METRICS) == []
    assert FP16_BOUNDS.check(METRICS) == ["agreement 99.00% < bound 99.50%"]
    assert FP32_BOUNDS.check(METRICS) == ["agreement 99.00% < bound 100.00%", "max |Δp| 0.004 > bound 0.0001"]
    worse = {**METRICS, "accuracy_change": -0.0125}
    assert INT8_BOUNDS.check(worse) == ["accuracy drop 1.25 points > bound 1.00"]
    assert INT8_BOUNDS.check({**METRICS, "accuracy_change": -0.01}) == []  # exactly at the bound passes


def test_bounds_overrides_parse() -> None:
    defaults = {name: fmt.bounds for name, fmt in all_formats().items()}
    parsed = parse_bounds(["tflite-int8:agreement=97%,accuracy_drop=2", "onnx-fp32:max_abs_diff=1e-3"], defaults)
    assert parsed["tflite-int8"] == Bounds(min_agreement=0.97, max_abs_diff=None, max_accuracy_drop=2.0)
    assert parsed["onnx-fp32"] == Bounds(min_agreement=1.0, max_abs_diff=1e-3)
    assert parse_bounds(["tflite-fp16:max_abs_diff=none"], defaults)["tflite-fp16"].max_abs_diff is None
    for bad, message in [
        ("tflite-int9:agreement=1", "expected FORMAT:key=value"),
        ("tflite-int8:speed=1", "unknown key 'speed'"),
        ("tflite-int8:agreement=lots", "'lots' is not a number"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_bounds([bad], defaults)


def test_config_refuses_nonsense_and_serialises() -> None:
    with pytest.raises(ConfigError, match="--calibration-images must be at least 1"):
        ExportConfig(calibration_images=0)
    with pytest.raises(ConfigError, match="--opset 99"):
        ExportConfig(opset=99)
    data = ExportConfig(formats=("tflite-int8",), bounds={"tflite-int8": INT8_BOUNDS}).to_dict()
    assert data["formats"] == ["tflite-int8"]
    assert data["bounds"] == {"tflite-int8": {"min_agreement": 0.98, "max_abs_diff": None, "max_accuracy_drop": 1.0}}
    assert (data["opset"], data["calibration_images"], data["strict"], data["dynamic_batch"]) == (17, 300, True, False)


def test_importing_the_exporter_and_its_command_does_not_import_tensorflow() -> None:
    code = (
        "import sys, edgeclf.exporter, edgeclf.commands.export\n"
        "edgeclf.exporter.all_formats()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx', 'onnx')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- quantisation variants (the remedies an int8 file gets when it misses a bound) -------------------


@pytest.mark.parametrize("name", ["tflite-int8", "onnx-int8"])
def test_an_int8_format_tries_what_was_asked_first_then_named_remedies(name) -> None:
    fmt = get_format(name)
    names = [v.name for v in fmt.variants]
    assert names[0] == "default" and len(names) == len(set(names)) >= 3
    calibration = Calibration(images=300, seed=3)
    asked = apply_variant(fmt.quantization, fmt.variants[0], calibration)
    assert asked == dataclasses.replace(fmt.quantization, calibration=calibration)


def test_applying_a_variant_changes_only_what_it_names() -> None:
    base = Quantization.int8(method="percentile")
    calibration = Calibration(images=300)
    per_tensor = apply_variant(base, Variant("pt", per_channel=False), calibration)
    assert (per_tensor.per_channel, per_tensor.method, per_tensor.calibration.images) == (False, "percentile", 300)
    more = apply_variant(base, Variant("more", calibration_images=1000), calibration)
    assert (more.per_channel, more.calibration.images) == (True, 1000)
    # Never fewer images than the export was told to use.
    more = apply_variant(base, Variant("more", calibration_images=1000), Calibration(images=2000))
    assert more.calibration.images == 2000
    ends = apply_variant(base, Variant("ends", float_ends=True, method="entropy"), calibration)
    assert (ends.float_ends, ends.method) == (True, "entropy")
    # Float formats have nothing to vary.
    assert apply_variant(Quantization.fp16(), Variant("pt", per_channel=False), calibration) == Quantization.fp16()


def test_onnx_int8_remedies_cover_the_calibration_methods_per_tensor_more_images_and_float_ends() -> None:
    variants = get_format("onnx-int8").variants
    assert {v.method for v in variants} >= {None, "percentile", "entropy"}
    assert any(v.per_channel is False for v in variants)
    assert any(v.calibration_images for v in variants)
    assert any(v.float_ends for v in variants)


def test_a_reference_judges_with_the_formats_bounds_unless_overridden() -> None:
    import numpy as np

    from edgeclf.exporter.parity import Reference

    keras = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], dtype=np.float32)
    labels = np.array([0, 1, 0, 1])
    flipped = keras.copy()
    flipped[2] = [0.45, 0.55]  # one of four top-1 labels changes: 75% agreement, |Δp| 0.15
    fmt = get_format("tflite-int8")
    judged = Reference(keras, labels, keras, ("a", "b")).judge(fmt, flipped)
    assert judged["agreement"] == 0.75 and judged["disagreements"] == 1
    assert judged["failures"] == ["agreement 75.00% < bound 98.00%", "accuracy drop 25.00 points > bound 1.00"]
    lenient = Reference(keras, labels, keras, bounds={fmt.name: Bounds(0.5, max_accuracy_drop=30)})
    assert lenient.judge(fmt, flipped)["failures"] == []
    assert lenient.bounds_for(get_format("onnx-int8")) == INT8_BOUNDS
