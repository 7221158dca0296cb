"""Class weights for imbalanced data and per-class parity figures (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclf.exporter.class_parity import per_class_agreement, weakest_class_line
from edgeclf.runtime.errors import DatasetError, EdgeclfError
from edgeclf.trainer.class_weight import class_weights


def test_auto_weights_are_inverse_frequency_and_equalise_each_class_total():
    labels = np.array([0] * 200 + [1] * 40)
    weights = class_weights(labels, 2, "auto")
    assert weights == {0: pytest.approx(0.6), 1: pytest.approx(3.0)}
    assert 200 * weights[0] == pytest.approx(40 * weights[1])


def test_balanced_split_gets_weight_one_and_none_mode_gets_no_weights():
    labels = np.array([0, 1, 2] * 5)
    assert class_weights(labels, 3, "auto") == {0: 1.0, 1: 1.0, 2: 1.0}
    assert class_weights(labels, 3, "none") is None


def test_auto_refuses_a_class_without_training_images():
    with pytest.raises(DatasetError, match=r"\[1\]"):
        class_weights(np.array([0, 0, 2]), 3, "auto")


def test_unknown_mode_names_the_known_ones():
    with pytest.raises(EdgeclfError, match="none, auto"):
        class_weights(np.array([0, 1]), 2, "balanced")


def test_train_config_rejects_an_unknown_class_weight():
    pytest.importorskip("numpy")
    from edgeclf.trainer.train import TrainConfig

    with pytest.raises(EdgeclfError, match="--class-weight"):
        TrainConfig(data="x", class_weight="inverse")
    assert TrainConfig.from_dict({"data": "x"}).class_weight == "none"  # configs saved before the option


def _probs(top: list[int], classes: int = 2) -> np.ndarray:
    out = np.full((len(top), classes), 0.1, dtype=np.float32)
    out[np.arange(len(top)), top] = 0.9
    return out


def test_per_class_agreement_finds_flips_hidden_in_the_minority_class():
    # 10 majority images all agree; 2 of the 4 minority images flip: overall 12/14 = 85.7%.
    labels = np.array([0] * 10 + [1] * 4)
    reference = _probs([0] * 10 + [1] * 4)
    scores = _probs([0] * 10 + [1, 1, 0, 0])
    rows = per_class_agreement(reference, scores, labels, ("bikes", "cars"))
    assert [r["label"] for r in rows] == ["bikes", "cars"]
    assert rows[0] == {"label": "bikes", "images": 10, "agreement": 1.0, "recall": 1.0, "keras_recall": 1.0}
    assert rows[1] == {"label": "cars", "images": 4, "agreement": 0.5, "recall": 0.5, "keras_recall": 1.0}
    line = weakest_class_line(rows, 0.8)
    assert line is not None and "'cars'" in line and "50.00%" in line
    assert weakest_class_line(rows, 0.5) is None


def test_per_class_agreement_skips_classes_without_images():
    rows = per_class_agreement(_probs([0, 2], 3), _probs([0, 2], 3), np.array([0, 2]))
    assert [r["label"] for r in rows] == ["0", "2"]
