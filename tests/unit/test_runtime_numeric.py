"""The classifier's numeric core: input quantisation (round + clip), dequantisation, scores, top-k."""

import numpy as np
import pytest

from edgeclf.runtime.classifier import dequantize, quantize, to_scores, top_predictions
from edgeclf.runtime.manifest import TensorInfo


def _tensor(dtype, scale=None, zero_point=None):
    return TensorInfo("t", dtype, (1, 2, 2, 3), scale, zero_point)


def test_quantize_rounds_to_nearest_instead_of_truncating():
    # scale 2: 3/2 = 1.5 -> 2 (half to even), 5/2 = 2.5 -> 2, 7/2 = 3.5 -> 4, 1/2 -> 0; truncation gives 1, 2, 3, 0
    values = np.array([3, 5, 7, 1, 9], np.uint8)
    out = quantize(values, _tensor("uint8", 2.0, 0))
    assert out.dtype == np.uint8
    assert out.tolist() == [2, 2, 4, 0, 4]
    # a non-integer step: 100 / 0.3 = 333.33 -> 333 before clipping, so use int16 to see the rounding
    assert quantize(np.array([100, 101], np.uint8), _tensor("int16", 0.3, 0)).tolist() == [333, 337]


def test_quantize_clips_to_the_dtype_range():
    # int8 with scale 1, zero point -100: 0 -> -100, 200 -> 100, 250 -> 150 clipped to 127, no wrap-around
    out = quantize(np.array([0, 200, 250, 255], np.uint8), _tensor("int8", 1.0, -100))
    assert out.dtype == np.int8
    assert out.tolist() == [-100, 100, 127, 127]
    # uint8 with a zero point that pushes values below 0: clipped at 0, not wrapped to 255
    assert quantize(np.array([0, 10, 255], np.uint8), _tensor("uint8", 0.5, -30)).tolist() == [0, 0, 255]


def test_quantize_with_the_common_int8_input_parameters():
    # TFLite's int8 input for 0..255 pixels: scale 1, zero point -128 -> a plain shift
    pixels = np.arange(256, dtype=np.uint8)
    out = quantize(pixels, _tensor("int8", 1.0, -128))
    assert np.array_equal(out.astype(np.int16), pixels.astype(np.int16) - 128)


def test_unquantized_tensors_take_values_as_they_are():
    pixels = np.array([[0, 128, 255]], np.uint8)
    assert quantize(pixels, _tensor("uint8")).tolist() == [[0, 128, 255]]
    as_float = quantize(pixels, _tensor("float32"))
    assert as_float.dtype == np.float32 and as_float.tolist() == [[0.0, 128.0, 255.0]]


def test_dequantize_uses_scale_and_zero_point():
    raw = np.array([[0, 128, 255]], np.uint8)
    real = dequantize(raw, _tensor("uint8", 1 / 256, 0))
    assert real.dtype == np.float32
    assert real[0].tolist() == pytest.approx([0.0, 0.5, 255 / 256])
    assert dequantize(np.array([-128, 0, 127], np.int8), _tensor("int8", 0.5, -28)).tolist() == [-50.0, 14.0, 77.5]
    assert dequantize(np.array([0.25], np.float32), _tensor("float32")).tolist() == [0.25]


def test_sigmoid_output_becomes_two_scores():
    scores = to_scores(np.array([[0.2], [0.9]], np.float32), "sigmoid")
    assert scores.shape == (2, 2)
    assert scores.ravel().tolist() == pytest.approx([0.8, 0.2, 0.1, 0.9])


def test_softmax_output_is_used_per_label():
    raw = np.array([[0.1, 0.7, 0.2]], np.float32)
    assert to_scores(raw, "softmax")[0].tolist() == pytest.approx([0.1, 0.7, 0.2])


def test_top_predictions_orders_limits_and_thresholds():
    labels = ("a", "b", "c")
    scores = np.array([0.2, 0.5, 0.3])
    assert [(p.label, p.index) for p in top_predictions(scores, labels, top_k=2)] == [("b", 1), ("c", 2)]
    assert [p.label for p in top_predictions(scores, labels, top_k=3, threshold=0.25)] == ["b", "c"]
    assert top_predictions(scores, labels, top_k=1, threshold=0.9) == []
    # ties keep label order, so the output is deterministic
    assert [p.label for p in top_predictions(np.array([0.5, 0.5]), ("x", "y"), top_k=2)] == ["x", "y"]
    assert top_predictions(scores, labels)[0].score == pytest.approx(0.5)
