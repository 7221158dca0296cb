"""Slow: the 54-MFLOP dsnet distilled from the pretrained default on the real cars-vs-bikes photos."""

from __future__ import annotations

import pytest
from helpers.paths import REAL_PHOTOS

pytestmark = pytest.mark.slow

# Measured once each on the 400 test photos (docs/training.md, "Distillation"): this recipe 93.25%,
# the same dsnet on the labels alone 90.75%. The bound sits between them, 1.25 points (5 photos)
# under the distilled run, for run-to-run spread.
DISTILLED_TEST_ACCURACY = 0.92


def test_dsnet_distilled_from_the_pretrained_default_beats_the_label_only_accuracy(tmp_path):
    if not (REAL_PHOTOS / "train").is_dir():
        pytest.skip(f"real photos not found at {REAL_PHOTOS} (set EDGECLF_REAL_PHOTOS)")
    pytest.importorskip("tensorflow")
    from edgeclf.runtime.fileio import sha256_file
    from edgeclf.runtime.manifest import Manifest
    from edgeclf.trainer.train import TrainConfig, train

    teacher = train(TrainConfig(data=str(REAL_PHOTOS), out=str(tmp_path / "teacher"), seed=0, verbose=2))
    config = TrainConfig(
        data=str(REAL_PHOTOS),
        preset="dsnet",
        teacher=str(teacher),
        teacher_copies=24,
        epochs=80,
        out=str(tmp_path / "student"),
        seed=0,
        verbose=2,
    )
    manifest = Manifest.load(train(config))
    record = manifest.training["distillation"]
    assert record["model_sha256"] == sha256_file(teacher / "model.keras") and record["copies"] == 24
    assert manifest.metrics["test_accuracy"] >= DISTILLED_TEST_ACCURACY
