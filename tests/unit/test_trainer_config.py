"""Trainer pieces that need no TensorFlow: the config, the best-epoch rule, evaluation metrics, the CLI guard."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeclf.runtime.errors import EdgeclfError
from edgeclf.trainer.evaluate import (
    ClassScores,
    EvaluationReport,
    Misclassified,
    confusion_matrix,
    per_class_scores,
    probabilities,
)
from edgeclf.trainer.history import best_index
from edgeclf.trainer.train import TrainConfig


@dataclasses.dataclass(frozen=True)
class _Recipe:
    name: str = "fake"
    image_size: int = 96
    batch_size: int = 12
    epochs: int = 30
    patience: int = 5
    learning_rate: float = 0.01


def test_config_resolves_only_missing_values_from_the_preset():
    config = TrainConfig(data="d", epochs=3, image_size=None, learning_rate=None).resolved(_Recipe())
    assert (config.epochs, config.image_size, config.batch_size, config.patience) == (3, 96, 12, 5)
    assert config.learning_rate == 0.01


def test_config_round_trips_through_its_dict():
    config = TrainConfig(data="d", preset="seed", fractions=(0.8, 0.1, 0.1), epochs=4, strategy="mirrored")
    again = TrainConfig.from_dict({**config.to_dict(), "unknown_future_key": 1})
    assert again == config


@pytest.mark.parametrize(
    ("field", "value"), [("epochs", 0), ("batch_size", -1), ("strategy", "tpu"), ("learning_rate", 0.0)]
)
def test_config_refuses_bad_values_with_a_domain_error(field, value):
    with pytest.raises(EdgeclfError, match=field.split("_")[0]):
        TrainConfig(data="d", **{field: value})


def _rows(*pairs):
    return [{"epoch": i + 1, "val_accuracy": acc, "val_loss": loss} for i, (acc, loss) in enumerate(pairs)]


def test_best_epoch_is_highest_val_accuracy_then_lowest_val_loss_then_earliest():
    assert best_index(_rows((0.5, 0.9), (0.8, 0.7), (0.7, 0.1))) == 1
    assert best_index(_rows((0.8, 0.9), (0.8, 0.4), (0.8, 0.6))) == 1
    assert best_index(_rows((0.8, 0.4), (0.8, 0.4))) == 0
    assert best_index([{"epoch": 1, "loss": 1.0}]) is None


def test_confusion_matrix_and_per_class_scores():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 0, 1, 1, 1])
    matrix = confusion_matrix(y_true, y_pred, 3)
    assert matrix.tolist() == [[2, 1, 0], [0, 2, 0], [0, 1, 0]]
    scores = per_class_scores(matrix, ("a", "b", "c"))
    assert scores[0] == ClassScores("a", 1.0, round(2 / 3, 6), 0.8, 3)
    assert scores[1].precision == 0.5 and scores[1].recall == 1.0 and scores[1].f1 == round(2 / 3, 6)
    assert scores[2] == ClassScores("c", 0.0, 0.0, 0.0, 1)  # never predicted: 0, not a division error


def test_probabilities_turn_one_sigmoid_into_two_columns():
    probs = probabilities(np.array([[0.2], [0.9]], np.float32), "sigmoid")
    np.testing.assert_allclose(probs, [[0.8, 0.2], [0.1, 0.9]], atol=1e-7)
    softmax = np.array([[0.1, 0.7, 0.2]], np.float32)
    np.testing.assert_array_equal(probabilities(softmax, "softmax"), softmax)


def test_report_text_shows_table_matrix_and_mistakes():
    report = EvaluationReport(
        run_dir="r",
        data="d",
        split="test",
        labels=("cars", "elephants"),
        count=4,
        accuracy=0.75,
        per_class=per_class_scores(np.array([[2, 0], [1, 1]]), ("cars", "elephants")),
        confusion=((2, 0), (1, 1)),
        misclassified=(Misclassified("d/test/elephants/3.jpg", "elephants", "cars", 0.61),),
        skipped=({"path": "d/test/cars/bad.jpg", "reason": "empty file (0 bytes)"},),
    )
    text = report.format_text()
    assert "accuracy: 0.7500 (3/4)" in text
    assert "d/test/elephants/3.jpg: elephants -> cars (0.610)" in text
    assert "d/test/cars/bad.jpg: empty file (0 bytes)" in text
    assert report.to_dict()["confusion"] == [[2, 0], [1, 1]]


@pytest.mark.parametrize("command", ["train", "evaluate", "augment-preview"])
def test_commands_without_tensorflow_name_the_extra_in_one_line(monkeypatch, tmp_path, command):
    import importlib.util

    from edgeclf.cli import app

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorflow" else real(name, *a))
    args = {
        "train": ["train", "--data", str(tmp_path)],
        "evaluate": ["evaluate", str(tmp_path), "--data", str(tmp_path)],
        "augment-preview": ["augment-preview", str(tmp_path / "x.jpg"), "--out", str(tmp_path / "p")],
    }[command]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert result.output.strip() == "error: TensorFlow is not installed: pip install 'edgeclf[train]'"


def test_default_run_folder_is_named_after_the_preset_and_never_reused(tmp_path):
    from edgeclf.trainer.rundir import new_run_dir

    config = TrainConfig(data="d", preset="seed", runs_dir=str(tmp_path))
    first = new_run_dir(config)
    assert first.parent == tmp_path and first.name.startswith("seed-")
    first.mkdir()
    second = new_run_dir(config)
    assert not second.exists()  # same second: a "-2" suffix, never the existing folder
    assert new_run_dir(TrainConfig(data="d", out=str(tmp_path / "mine"))) == tmp_path / "mine"


def test_latest_link_follows_the_newest_finished_run_and_only_inside_runs_dir(tmp_path):
    from edgeclf.trainer.rundir import update_latest
    from edgeclf.trainer.runlog import RunLog

    runs = tmp_path / "runs"
    (runs / "a").mkdir(parents=True)
    (runs / "b").mkdir()
    log = RunLog(verbose=0)
    update_latest(runs / "a", runs, log)
    assert (runs / "latest").resolve() == (runs / "a").resolve()
    update_latest(runs / "b", runs, log)
    assert (runs / "latest").resolve() == (runs / "b").resolve()
    assert not [p for p in runs.iterdir() if p.name.startswith(".")]  # no temporary link left behind
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    update_latest(elsewhere, runs, log)
    assert (runs / "latest").resolve() == (runs / "b").resolve()


def test_resolved_config_holds_plain_numbers_and_serialises_like_the_given_one():
    from edgeclf.trainer.config import ResolvedConfig

    given = TrainConfig(data="d", epochs=3)
    config = given.resolved(_Recipe())
    assert isinstance(config, ResolvedConfig)
    assert all(type(getattr(config, name)) is int for name in ("epochs", "batch_size", "image_size", "patience"))
    assert TrainConfig.from_dict(config.to_dict()) == dataclasses.replace(
        given, batch_size=12, image_size=96, learning_rate=0.01, patience=5, resize="squash"
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: _augment_with(fill_mode="mirror"), "fill_mode 'mirror'"),
        (lambda: _preset_with(optimizer="lion"), "optimizer 'lion'; known: rmsprop, adam"),
        (lambda: _preset_with(lr_schedule="step"), "lr_schedule 'step'"),
        (lambda: _preset_with(architecture="resnet"), "architecture 'resnet'; known: seed, dsnet"),
    ],
)
def test_a_bad_recipe_value_is_a_config_error_naming_the_known_values(make, message):
    from edgeclf.runtime.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        make()


def _preset_with(**changes):
    from edgeclf.trainer.presets import get_preset

    return dataclasses.replace(get_preset("dsnet"), **changes)


def _augment_with(**values):
    from edgeclf.trainer.augment import AugmentSpec

    return AugmentSpec(**values)
