"""``--class-weight auto`` reaches Keras' fit: same data and seed, only the weights differ."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from edgeclf.trainer.train import TrainConfig, train


@pytest.fixture(scope="module")
def imbalanced_data(tmp_path_factory) -> Path:
    from edgeclf.trainer.demo_data import generate_demo_dataset

    data = generate_demo_dataset(
        tmp_path_factory.mktemp("imbalanced") / "demo",
        train_per_class=12,
        validation_per_class=3,
        test_per_class=0,
        image_size=(48, 40),
        seed=2,
    )
    for path in sorted((data / "train" / "elephants").iterdir())[3:]:  # 12 cars vs 3 elephants
        path.unlink()
    return data


def _run(data: Path, out: Path, mode: str) -> Path:
    return train(
        TrainConfig(
            data=str(data), out=str(out), image_size=32, epochs=1, batch_size=8, seed=0, verbose=0, class_weight=mode
        )
    )


def test_auto_class_weight_is_recorded_and_changes_the_training_loss(imbalanced_data, tmp_path):
    plain = _run(imbalanced_data, tmp_path / "none", "none")
    weighted = _run(imbalanced_data, tmp_path / "auto", "auto")
    report = json.loads((weighted / "report.json").read_text())
    assert report["class_weight"] == {"cars": pytest.approx(0.625), "elephants": pytest.approx(2.5)}
    assert "class_weight" not in json.loads((plain / "report.json").read_text())
    assert json.loads((weighted / "train_config.json").read_text())["class_weight"] == "auto"
    loss_plain = json.loads((plain / "history.json").read_text())[0]["loss"]
    loss_weighted = json.loads((weighted / "history.json").read_text())[0]["loss"]
    assert loss_plain != pytest.approx(loss_weighted, rel=1e-4)
