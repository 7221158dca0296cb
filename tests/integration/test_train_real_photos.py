"""Slow: the default preset trained on the real photo sets (skips when they are absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.paths import PET_PHOTOS, REAL_PHOTOS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    if not (REAL_PHOTOS / "train").is_dir():
        pytest.skip(f"real photos not found at {REAL_PHOTOS} (set EDGECLF_REAL_PHOTOS)")
    pytest.importorskip("tensorflow")
    from edgeclf.trainer.train import TrainConfig, train

    out = tmp_path_factory.mktemp("real") / "run"
    return train(TrainConfig(data=str(REAL_PHOTOS), preset="default", out=str(out), seed=0, verbose=2))


def test_default_preset_learns_the_real_photos(real_run):
    from edgeclf.runtime.manifest import Manifest

    manifest = Manifest.load(real_run)
    report = json.loads((real_run / "report.json").read_text())
    # Every photo is read, the WebP one included (image_dataset_from_directory skips it).
    assert report["skipped"]["count"] == 0
    assert manifest.data["counts"]["train"] == {"bikes": 200, "cars": 200}
    history = json.loads((real_run / "history.json").read_text())
    assert len(history) == manifest.metrics["epochs_run"]
    best = manifest.metrics["best_epoch"]
    assert history[best - 1]["val_accuracy"] == max(row["val_accuracy"] for row in history)
    if manifest.metrics["stopped_early"]:
        assert len(history) - best == manifest.training["patience"]
    # Pretrained EfficientNet-Lite0 with a new head: the target on these 400 test photos is 99%
    # (the from-scratch dsnet reached 88.8-91.8%, the seed's network 84-88%).
    assert manifest.metrics["test_accuracy"] >= 0.99
    # Training after decoding (backbone features of train + validation, then the head) within 2 minutes
    # is a benchmark figure, not asserted; that it was measured and recorded is.
    assert manifest.metrics["train_seconds_after_decode"] > 0


def test_default_preset_learns_cats_vs_dogs(tmp_path):
    if not (PET_PHOTOS / "train").is_dir():
        pytest.skip(f"pet photos not found at {PET_PHOTOS} (set EDGECLF_PET_PHOTOS)")
    pytest.importorskip("tensorflow")
    from edgeclf.runtime.manifest import Manifest
    from edgeclf.trainer.train import TrainConfig, train

    run = train(TrainConfig(data=str(PET_PHOTOS), out=str(tmp_path / "run"), seed=0, verbose=2))
    manifest = Manifest.load(run)
    assert manifest.preset == "default" and manifest.training["weights"] == "imagenet"
    assert manifest.data["counts"]["test"] == {"cats": 200, "dogs": 200}
    assert manifest.metrics["test_accuracy"] >= 0.97


def test_evaluate_on_real_photos_matches_training_time_test_accuracy(real_run, tmp_path):
    from edgeclf.runtime.manifest import Manifest
    from edgeclf.trainer.evaluate import evaluate

    manifest = Manifest.load(real_run)
    report = evaluate(real_run, REAL_PHOTOS, out_dir=tmp_path)
    assert report.split == "test" and report.count == 400
    assert report.accuracy == pytest.approx(manifest.metrics["test_accuracy"], abs=1e-6)
