"""``Quantization.apply_to_converter`` is the one recipe for TFLite converter flags: real conversions
of a small Keras model under each preset, read back from the flatbuffers."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from edgeclf.exporter.formats import Quantization  # noqa: E402
from edgeclf.runtime.backends import get_backend  # noqa: E402

CALIBRATION = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input(batch_shape=(1, 16, 16, 3), dtype="uint8", name="images")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(4, activation="relu", bias_initializer="ones")(x)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", bias_initializer="ones")(x))


def _convert(model, quant: Quantization, **options) -> tuple[bytes, dict]:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    representative = lambda: ([CALIBRATION[i : i + 1]] for i in range(len(CALIBRATION)))  # noqa: E731
    details = quant.apply_to_converter(converter, representative, **options)
    return converter.convert(), details


def _tensors(data: bytes) -> list[dict]:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=data).get_tensor_details()


def _weight_scales(data: bytes, rank: int) -> list[int]:
    """How many scales each int8 weight tensor of ``rank`` has (4: convolutions, 2: Dense; 1 = per tensor)."""
    return [
        len(t["quantization_parameters"]["scales"])
        for t in _tensors(data)
        # Weights lead with their output channels; activations with the batch of 1.
        if t["dtype"] == np.int8 and len(t["shape"]) == rank and t["shape"][0] > 1
    ]


def test_int8_makes_uint8_in_and_out_with_per_channel_weights(model, tmp_path) -> None:
    data, details = _convert(model, Quantization.int8())
    assert details == {"calibration_method": "minmax", "per_channel": True, "per_channel_dense": True}
    path = tmp_path / "int8.tflite"
    path.write_bytes(data)
    session = get_backend("litert").load(path)
    assert session.inputs[0].dtype == "uint8" and session.outputs[0].dtype == "uint8"
    assert _weight_scales(data, 4) == [8] and all(n > 1 for n in _weight_scales(data, 2))


def test_per_tensor_and_per_tensor_dense_are_what_the_flags_say(model) -> None:
    data, details = _convert(model, Quantization.int8(per_channel=False))
    assert (details["per_channel"], details["per_channel_dense"]) == (False, False)
    assert _weight_scales(data, 4) == [1]
    data, details = _convert(model, Quantization.int8(), per_channel_dense=False)
    assert (details["per_channel"], details["per_channel_dense"]) == (True, False)
    assert _weight_scales(data, 4) == [8] and _weight_scales(data, 2) == [1, 1]


def test_fp16_stores_float16_weights_and_int8_refuses_to_run_without_images(model, tmp_path) -> None:
    fp32, details = _convert(model, Quantization.fp32())
    fp16, _ = _convert(model, Quantization.fp16())
    assert details == {}
    assert np.float16 in {t["dtype"] for t in _tensors(fp16)}  # float16 weights, dequantised at load
    assert np.float16 not in {t["dtype"] for t in _tensors(fp32)}
    with pytest.raises(ValueError, match="representative"):
        Quantization.int8().apply_to_converter(tf.lite.TFLiteConverter.from_keras_model(model))
