"""The Keras EfficientNet-Lite port: same numbers as an independent numpy forward pass, ImageNet classes
that make sense on real photos, and the pretrained presets' weights handling."""

from __future__ import annotations

import collections
import shutil

import numpy as np
import pytest
from helpers import lite_numpy
from helpers.paths import REAL_PHOTOS

from edgeclf.runtime.errors import EdgeclfError
from edgeclf.runtime.manifest import InputSpec
from edgeclf.trainer import efficientnet_lite as lite

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

# ImageNet-1k classes that are cars (road vehicles with four wheels) and that are motorbikes.
CAR_CLASSES = {407, 436, 468, 511, 581, 609, 627, 656, 661, 675, 717, 734, 751, 817, 864}
MOTORBIKE_CLASSES = {665, 670}


@pytest.fixture(scope="module")
def states() -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for name in ("lite0", "lite2"):
        variant = lite.get_variant(name)
        out[name] = lite.read_variant_weights(variant, "imagenet")
    return out


# Lite0 at its own size and Lite2 (deeper and wider, at an odd size); Lite1 uses the same code path
# (tests/unit/test_torch_weights.py maps every one of its tensors).
@pytest.mark.parametrize("name, size", [("lite0", 224), ("lite2", 75)])
def test_keras_matches_an_independent_numpy_forward_pass(states, name, size):
    variant = lite.get_variant(name)
    model = lite.build_imagenet_classifier(variant, size, states[name])
    rng = np.random.default_rng(size)
    images = rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    features, logits = lite_numpy.forward(states[name], images)
    got_logits = model.predict(images, verbose=0)
    got_features = keras.Model(model.inputs, model.get_layer(lite.FEATURES_LAYER).output).predict(images, verbose=0)
    assert np.abs(got_features - features).max() <= 1e-4
    assert np.abs(got_logits - logits).max() <= 1e-4
    assert np.abs(logits).max() > 1.0  # real logits, not a degenerate all-zero network


def test_the_imagenet_head_puts_car_photos_on_car_classes(states):
    if not (REAL_PHOTOS / "test" / "cars").is_dir():
        pytest.skip(f"real photos not found at {REAL_PHOTOS} (set EDGECLF_REAL_PHOTOS)")
    from edgeclf.runtime.dataset import Sample, load_samples

    model = lite.build_imagenet_classifier(lite.get_variant("lite0"), 224, states["lite0"])
    found = {}
    for label, classes in (("cars", CAR_CLASSES), ("bikes", MOTORBIKE_CLASSES)):
        files = sorted(p for p in (REAL_PHOTOS / "test" / label).iterdir() if p.is_file())[:50]
        loaded = load_samples([Sample(p, 0) for p in files], InputSpec(224, 224), workers=2)
        top1 = model.predict(loaded.images, batch_size=25, verbose=0).argmax(axis=1)
        found[label] = (np.isin(top1, list(classes)).mean(), collections.Counter(top1.tolist()).most_common(3))
    # Measured on all 200 test cars: 96% on car classes (817 sports car, 656 minivan, 627 limousine…).
    assert found["cars"][0] >= 0.8, found
    assert found["bikes"][0] >= 0.6, found


def test_preset_reads_imagenet_weights_offline_and_from_a_copy_of_the_pth(states, tmp_path):
    from edgeclf.trainer.presets import get_preset

    preset = get_preset("lite0")
    spec = InputSpec(64, 64)
    model = preset.build(spec, 3, weights="imagenet")
    np.testing.assert_array_equal(
        model.get_layer("block15_project_conv").get_weights()[0],
        states["lite0"]["_blocks.15._project_conv.weight"].transpose(2, 3, 1, 0),
    )
    copy = tmp_path / "weights.pth"
    shutil.copyfile(lite.installed_weights_path(lite.get_variant("lite0")), copy)
    again = preset.build(spec, 3, weights=str(copy))
    np.testing.assert_array_equal(again.get_layer("head_bn").get_weights()[3], states["lite0"]["_bn1.running_var"])
    # The Lite2 file is not Lite0's: refused by its digest before it is unpickled.
    with pytest.raises(EdgeclfError, match="sha256"):
        preset.build(spec, 3, weights=str(lite.installed_weights_path(lite.get_variant("lite2"))))
