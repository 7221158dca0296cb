"""Transfer learning with the pretrained presets: cached backbone features, a frozen backbone, the whole
graph saved, and --fine-tune with BatchNorm frozen (tiny synthetic data, 32×32, seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeclf.runtime.errors import EdgeclfError
from edgeclf.runtime.manifest import Manifest

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    from edgeclf.trainer.demo_data import generate_demo_dataset

    return generate_demo_dataset(
        tmp_path_factory.mktemp("transfer-data") / "demo",
        train_per_class=10,
        validation_per_class=4,
        test_per_class=4,
        image_size=(64, 48),
        seed=2,
    )


def _train(data: Path, out: Path, **overrides) -> Path:
    from edgeclf.trainer.train import TrainConfig, train

    fields = dict(data=str(data), out=str(out), preset="lite0", image_size=32, epochs=3, seed=0, verbose=0)
    fields.update(overrides)
    return train(TrainConfig(**fields))


@pytest.fixture(scope="module")
def pretrained_state():
    from edgeclf.trainer import efficientnet_lite as lite

    return lite.read_variant_weights(lite.get_variant("lite0"), "imagenet")


def test_head_is_fitted_on_cached_features_and_the_backbone_stays_pretrained(small_data, tmp_path, pretrained_state):
    run = _train(small_data, tmp_path / "run")
    manifest = Manifest.load(run)
    assert manifest.preset == "lite0" and manifest.training["weights"] == "imagenet"
    metrics = manifest.metrics
    assert metrics["train_features"] == 2 * 20  # every training image once, plus its mirrored copy
    assert set(metrics["feature_seconds"]) == {"train", "validation", "test"}
    assert metrics["head_epochs"] == metrics["epochs_run"] <= 3
    model = keras.models.load_model(run / "model.keras")  # the whole graph, no custom objects
    assert model.inputs[0].dtype == "uint8" and model.output_names == ["scores"]
    assert tuple(model.inputs[0].shape) == (None, 32, 32, 3)
    # Frozen: the saved backbone holds exactly the published weights.
    np.testing.assert_array_equal(
        model.get_layer("block10_dwconv").get_weights()[0],
        pretrained_state["_blocks.10._depthwise_conv.weight"].transpose(2, 3, 0, 1),
    )
    np.testing.assert_array_equal(model.get_layer("stem_bn").get_weights()[2], pretrained_state["_bn0.running_mean"])
    history = json.loads((run / "history.json").read_text())
    assert len(history) == metrics["epochs_run"] and "test_accuracy" in history[0]


def test_without_augmentation_there_are_no_mirrored_copies(small_data, tmp_path):
    run = _train(small_data, tmp_path / "run", augment=False, epochs=1)
    assert Manifest.load(run).metrics["train_features"] == 20


def test_feature_extraction_reports_progress_and_matches_predict(small_data, tmp_path, monkeypatch, capsys):
    from edgeclf.runtime import progress
    from edgeclf.trainer.efficientnet_lite import FEATURES_LAYER
    from edgeclf.trainer.transfer import compute_features

    monkeypatch.setattr(progress, "PLAIN_AFTER_SECONDS", 0.0)
    with progress.progress_mode("plain"):  # what --json and a non-terminal stderr get
        run = _train(small_data, tmp_path / "run", epochs=1)
    err = capsys.readouterr().err.splitlines()
    # 20 training photos plus their mirrored copies, then the other splits: a line per tenth, then the last.
    assert "features of train photos: 40/40" in err and "features of test photos: 8/8" in err, err
    model = keras.models.load_model(run / "model.keras")
    images = np.random.default_rng(0).integers(0, 256, (37, 32, 32, 3), dtype=np.uint8)  # a partial last batch
    with progress.progress_mode("off"):
        cached = compute_features(model, {"x": images}, {"x": np.zeros(37)}, flip=False, batch_size=16)
    extractor = keras.Model(model.inputs, model.get_layer(FEATURES_LAYER).output)
    np.testing.assert_allclose(cached.features["x"], extractor.predict(images, verbose=0), rtol=1e-5, atol=1e-6)
    assert capsys.readouterr().err == ""


@pytest.mark.slow  # four epochs through the whole network: about two minutes on 2 busy cores
def test_fine_tune_trains_the_last_blocks_with_batchnorm_frozen(small_data, tmp_path, pretrained_state):
    run = _train(small_data, tmp_path / "run", epochs=2, fine_tune=True)
    manifest = Manifest.load(run)
    metrics = manifest.metrics
    history = json.loads((run / "history.json").read_text())
    assert len(history) == metrics["head_epochs"] + 4  # the preset's 4 fine-tuning epochs follow the head's
    assert [row["epoch"] for row in history] == list(range(1, len(history) + 1))
    assert metrics["fine_tune_seconds"] > 0
    model = keras.models.load_model(run / "model.keras")
    # BatchNorm frozen everywhere, also in the fine-tuned blocks; early blocks untouched.
    np.testing.assert_array_equal(
        model.get_layer("block15_project_bn").get_weights()[3], pretrained_state["_blocks.15._bn2.running_var"]
    )
    np.testing.assert_array_equal(
        model.get_layer("block2_dwconv").get_weights()[0],
        pretrained_state["_blocks.2._depthwise_conv.weight"].transpose(2, 3, 0, 1),
    )


def test_unfreeze_last_blocks_leaves_batchnorm_and_early_blocks_frozen():
    from edgeclf.runtime.manifest import InputSpec
    from edgeclf.trainer.presets import get_preset
    from edgeclf.trainer.transfer import unfreeze_last_blocks

    model = get_preset("lite0").build(InputSpec(32, 32), 2)
    trainable = unfreeze_last_blocks(model, 2)
    assert set(trainable) == {
        "block14_expand_conv",
        "block14_dwconv",
        "block14_project_conv",
        "block15_expand_conv",
        "block15_dwconv",
        "block15_project_conv",
        "head_conv",
        "scores",
    }
    assert not any(layer.trainable for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))


def test_fine_tune_is_refused_for_a_preset_without_pretrained_weights(small_data, tmp_path):
    with pytest.raises(EdgeclfError, match="--fine-tune needs a preset with pretrained weights"):
        _train(small_data, tmp_path / "run", preset="dsnet", fine_tune=True)
    assert not (tmp_path / "run" / "manifest.json").exists()
