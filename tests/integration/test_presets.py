"""Presets: every model takes uint8, rescales in the graph, ends in "scores"; the seed is the article's."""

from __future__ import annotations

import urllib.request

import numpy as np
import pytest

from edgeclf.runtime.errors import EdgeclfError
from edgeclf.runtime.manifest import InputSpec
from edgeclf.trainer.augment import SEED_AUGMENT
from edgeclf.trainer.presets import BN_MOMENTUM, PRESETS, count_flops, get_preset

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

# Keras 3.15 warns "Skipping nested container ... will retain their freshly-initialized weights" for
# the functional graph's bookkeeping containers on every load_weights; the tests below check that
# every weight did load, so the warning is noise here.
NESTED_CONTAINER_WARNING = "ignore:Skipping nested container:UserWarning"

SIDE = 32  # small inputs keep these tests fast; every preset accepts 32×32


def _spec(side: int = SIDE) -> InputSpec:
    return InputSpec(height=side, width=side)


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers") and layer.layers:
            yield from _all_layers(layer)


@pytest.fixture(scope="module")
def built():
    """Every preset built for 2 and 3 classes at 32×32 (built once for the module)."""
    return {(name, n): preset.build(_spec(), n) for name, preset in PRESETS.items() for n in (2, 3)}


def test_unknown_preset_lists_known_names():
    with pytest.raises(EdgeclfError) as info:
        get_preset("resnet9000")
    message = str(info.value)
    assert "resnet9000" in message
    for name in PRESETS:
        assert name in message
    assert "\n" not in message


def test_registry_has_the_required_presets():
    assert {"seed", "default", "dsnet", "mobilenetv2", "lite0", "lite1", "lite2"} <= set(PRESETS)
    default = get_preset("default")
    assert (default.architecture, default.variant) == ("efficientnet_lite", "lite0")
    assert default.default_weights == "imagenet"
    assert get_preset("dsnet").architecture == "dsnet"


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("num_classes", [2, 3])
def test_input_output_contract(built, name, num_classes):
    model = built[(name, num_classes)]
    assert len(model.inputs) == 1
    assert model.inputs[0].dtype == "uint8"
    assert tuple(model.inputs[0].shape) == (None, SIDE, SIDE, 3)
    assert model.layers[0].name == "images"
    out_layer = model.get_layer("scores")
    assert model.output_names == ["scores"]
    expected_units = 1 if num_classes == 2 else num_classes
    assert out_layer.units == expected_units
    assert out_layer.activation.__name__ == ("sigmoid" if num_classes == 2 else "softmax")
    assert tuple(model.outputs[0].shape) == (None, expected_units)

    batch = np.stack([np.full((SIDE, SIDE, 3), 255, np.uint8), np.zeros((SIDE, SIDE, 3), np.uint8)])
    scores = model.predict(batch, verbose=0)
    assert scores.shape == (2, expected_units)
    assert np.all(np.isfinite(scores))
    assert np.all((scores >= 0) & (scores <= 1))
    if num_classes > 2:
        np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", list(PRESETS))
def test_rescaling_is_inside_the_graph(built, name):
    model = built[(name, 2)]
    first = model.layers[1]
    assert isinstance(first, keras.layers.Rescaling), f"{name}: first layer after the input is {first}"
    to_first = keras.Model(model.inputs, first.output)
    white = to_first.predict(np.full((1, SIDE, SIDE, 3), 255, np.uint8), verbose=0)
    black = to_first.predict(np.zeros((1, SIDE, SIDE, 3), np.uint8), verbose=0)
    # seed: 0..1 as the article; MobileNets: -1..1; EfficientNet-Lite: (x - 127) / 128
    expected_low = {"seed": 0.0, "efficientnet_lite": -127 / 128}.get(PRESETS[name].architecture, -1.0)
    np.testing.assert_allclose(black, expected_low, atol=1e-6)
    np.testing.assert_allclose(white, 1.0, atol=1e-6)


def test_seed_is_the_articles_network():
    preset = get_preset("seed")
    model = preset.build(preset.input_spec(), 2)
    assert tuple(model.inputs[0].shape) == (None, 300, 300, 3)
    layers = [
        layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer | keras.layers.Rescaling)
    ]
    described = []
    for layer in layers:
        if isinstance(layer, keras.layers.Conv2D):
            described.append(("Conv2D", layer.filters, layer.kernel_size, layer.activation.__name__, layer.padding))
        elif isinstance(layer, keras.layers.MaxPooling2D):
            described.append(("MaxPooling2D", layer.pool_size))
        elif isinstance(layer, keras.layers.Dense):
            described.append(("Dense", layer.units, layer.activation.__name__))
        elif isinstance(layer, keras.layers.Dropout):
            described.append(("Dropout", layer.rate))
        else:
            described.append((type(layer).__name__,))
    assert described == [
        ("Conv2D", 32, (3, 3), "relu", "valid"),
        ("MaxPooling2D", (2, 2)),
        ("Conv2D", 32, (3, 3), "relu", "valid"),
        ("MaxPooling2D", (2, 2)),
        ("Conv2D", 64, (3, 3), "relu", "valid"),
        ("MaxPooling2D", (2, 2)),
        ("Flatten",),
        ("Dense", 64, "relu"),
        ("Dropout", 0.5),
        ("Dense", 1, "sigmoid"),
    ]
    assert (preset.image_size, preset.batch_size) == (300, 16)
    preset.compile(model, 2)
    assert isinstance(model.optimizer, keras.optimizers.RMSprop)
    assert isinstance(model.loss, keras.losses.BinaryCrossentropy)
    # The article's ImageDataGenerator options, one Keras 3 layer each.
    assert preset.augment == SEED_AUGMENT
    aug = {layer.name: layer for layer in preset.augmentation(0).layers}
    assert aug["rotation"].factor == pytest.approx((-40 / 360, 40 / 360))
    assert (aug["shift"].height_factor, aug["shift"].width_factor) == (0.2, 0.2)
    assert aug["shear"].x_factor == pytest.approx((-0.2, 0.2))
    assert (aug["zoom"].height_factor, aug["zoom"].width_factor) == (0.2, 0.2)
    assert aug["flip"].mode == "horizontal"
    for name in ("rotation", "shift", "shear", "zoom"):
        assert aug[name].fill_mode == "nearest"


def test_count_flops_of_the_seed_network():
    # Valid 3×3 convs and 2×2 pools at 300×300: 298→149, 147→73, 71→35; FLOPs = 2 × multiply-adds.
    expected = 2 * (298 * 298 * 32 * 9 * 3 + 147 * 147 * 32 * 9 * 32 + 71 * 71 * 64 * 9 * 32)
    expected += 2 * (35 * 35 * 64 * 64 + 64 * 1)
    preset = get_preset("seed")
    flops = count_flops(preset.build(preset.input_spec(), 2))
    assert flops == expected
    assert flops == pytest.approx(0.75e9, rel=0.02)  # the seed CNN is ≈0.75 GFLOP a frame (docs/stack.md)


def test_count_flops_of_separable_and_nested_layers():
    inputs = keras.Input((16, 16, 8))
    x = keras.layers.DepthwiseConv2D(3, padding="same")(inputs)  # 2·16·16·8·9
    x = keras.layers.SeparableConv2D(4, 3, strides=2, padding="same")(x)  # 2·8·8·8·9 + 2·8·8·8·4
    inner = keras.Model(inputs, x)
    outer_in = keras.Input((16, 16, 8))
    y = inner(outer_in)
    y = keras.layers.Dense(5)(y)  # applied per position: 2·8·8·4·5
    model = keras.Model(outer_in, y)
    expected = 2 * 16 * 16 * 8 * 9 + 2 * 8 * 8 * 8 * 9 + 2 * 8 * 8 * 8 * 4 + 2 * 8 * 8 * 4 * 5
    assert count_flops(model) == expected


def test_dsnet_is_a_fraction_of_the_seed_cost():
    seed, dsnet = get_preset("seed"), get_preset("dsnet")
    seed_flops = count_flops(seed.build(seed.input_spec(), 2))
    dsnet_flops = count_flops(dsnet.build(dsnet.input_spec(), 2))
    assert dsnet_flops < seed_flops / 4


@pytest.mark.parametrize("name", list(PRESETS))
def test_batchnorm_momentum_is_low_enough_for_small_data(built, name):
    norms = [layer for layer in _all_layers(built[(name, 2)]) if isinstance(layer, keras.layers.BatchNormalization)]
    if name != "seed":
        assert norms, f"{name} is expected to use BatchNorm"
    assert all(layer.momentum <= BN_MOMENTUM <= 0.9 for layer in norms), [
        (layer.name, layer.momentum) for layer in norms
    ]


def test_batchnorm_statistics_catch_up_within_a_few_steps():
    """docs/stack.md: with BatchNorm momentum 0.99 the inference-mode output stayed constant on small data."""
    keras.utils.set_random_seed(0)
    preset = get_preset("dsnet")
    model = preset.build(_spec(), 2)
    preset.compile(model, 2, learning_rate=3e-3)
    rng = np.random.default_rng(0)
    dark = rng.integers(0, 80, (32, SIDE, SIDE, 3)).astype(np.uint8)
    bright = rng.integers(170, 256, (32, SIDE, SIDE, 3)).astype(np.uint8)
    x = np.concatenate([dark, bright])
    y = np.array([0] * 32 + [1] * 32)
    model.fit(x, y, batch_size=8, epochs=8, shuffle=True, verbose=0)  # 64 steps: 0.9**64 ≈ 0.001, 0.99**64 ≈ 0.53
    scores = model.predict(x, verbose=0).ravel()
    # Inference mode (moving statistics) must already separate the classes.
    assert scores[32:].mean() - scores[:32].mean() > 0.3, (scores[:32].mean(), scores[32:].mean())


def test_augmentation_is_float_0_255_random_and_seeded():
    import tensorflow as tf

    batch = np.random.default_rng(1).integers(0, 256, (4, SIDE, SIDE, 3)).astype(np.uint8)
    out_a = get_preset("seed").augmentation(7)(tf.constant(batch), training=True).numpy()
    out_b = get_preset("seed").augmentation(7)(tf.constant(batch), training=True).numpy()
    assert out_a.dtype == np.float32 and out_a.shape == batch.shape
    assert out_a.min() >= 0.0 and out_a.max() <= 255.0
    assert np.abs(out_a - batch).mean() > 5.0  # it actually transforms
    np.testing.assert_array_equal(out_a, out_b)  # same seed, same transforms
    # In tf.data, as the trainer uses it.
    aug = get_preset("default").augmentation(0)
    ds = tf.data.Dataset.from_tensor_slices(batch).batch(4).map(lambda x: aug(x, training=True))
    mapped = next(iter(ds)).numpy()
    assert mapped.dtype == np.float32 and mapped.shape == batch.shape


def test_imagenet_is_refused_for_presets_trained_from_scratch():
    with pytest.raises(EdgeclfError, match="mobilenetv2"):
        get_preset("seed").build(_spec(), 2, weights="imagenet")


def test_offline_imagenet_download_is_one_clear_line(tmp_path, monkeypatch):
    import keras.src.backend.config as keras_config

    # No cached file (fresh Keras home) and no way out (a dead proxy), whatever the machine's network.
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "keras-home"))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(urllib.request, "_opener", None)
    with pytest.raises(EdgeclfError) as info:
        get_preset("mobilenetv2").build(_spec(96), 2, weights="imagenet")
    message = str(info.value)
    assert "\n" not in message
    assert "ImageNet" in message and "--weights" in message
    assert not list((tmp_path / "keras-home").rglob("*.h5"))


@pytest.mark.filterwarnings(NESTED_CONTAINER_WARNING)
def test_local_backbone_weights_file_is_loaded(tmp_path):
    preset = get_preset("mobilenetv2")
    donor = keras.applications.MobileNetV2(
        input_shape=(SIDE, SIDE, 3), include_top=False, weights=None, pooling="avg", alpha=preset.width
    )
    path = tmp_path / "backbone.weights.h5"
    donor.save_weights(path)
    model = preset.build(_spec(), 2, weights=str(path))
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    for got, want in zip(backbone.get_weights(), donor.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    fresh = next(layer for layer in preset.build(_spec(), 2).layers if isinstance(layer, keras.Model))
    assert any(not np.array_equal(a, b) for a, b in zip(fresh.get_weights(), donor.get_weights(), strict=True))


@pytest.mark.filterwarnings(NESTED_CONTAINER_WARNING)
def test_bad_weights_paths_are_one_clear_line(tmp_path):
    preset = get_preset("mobilenetv2")
    with pytest.raises(EdgeclfError, match="not found"):
        preset.build(_spec(), 2, weights=str(tmp_path / "missing.weights.h5"))
    other = keras.applications.MobileNetV2(input_shape=(SIDE, SIDE, 3), include_top=False, weights=None, alpha=1.0)
    path = tmp_path / "alpha1.weights.h5"
    other.save_weights(path)
    with pytest.raises(EdgeclfError) as info:
        preset.build(_spec(), 2, weights=str(path))
    assert "\n" not in str(info.value)


@pytest.mark.filterwarnings(NESTED_CONTAINER_WARNING)
def test_whole_model_weights_for_a_scratch_preset(tmp_path):
    preset = get_preset("dsnet")
    donor = preset.build(_spec(), 2)
    path = tmp_path / "model.weights.h5"
    donor.save_weights(path)
    model = preset.build(_spec(), 2, weights=str(path))
    for got, want in zip(model.get_weights(), donor.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
