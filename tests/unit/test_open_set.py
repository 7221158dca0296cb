"""Temperature scaling and the false-accept threshold (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclf.runtime.open_set import accepted, calibrated, fit_temperature, logits, pick_threshold


def test_sigmoid_scores_round_trip_through_logits_at_temperature_one():
    scores = np.array([[0.9, 0.1], [0.25, 0.75]], dtype=np.float32)
    np.testing.assert_allclose(calibrated(scores, "sigmoid", 1.0), scores, atol=1e-6)
    np.testing.assert_allclose(logits(scores, "sigmoid")[:, 1], np.log([0.1 / 0.9, 0.75 / 0.25]), rtol=1e-6)


def test_softmax_scores_round_trip_and_temperature_flattens_them():
    scores = np.array([[0.7, 0.2, 0.1]], dtype=np.float32)
    np.testing.assert_allclose(calibrated(scores, "softmax", 1.0), scores, atol=1e-6)
    hot = calibrated(scores, "softmax", 3.0)[0]
    assert hot.argmax() == 0 and hot[0] < 0.7 and hot.sum() == pytest.approx(1.0)


def _overconfident(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    # True logits z ~ N(±2, 1); the "model" reports 4·z (overconfident by a factor of 4).
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    z = np.where(labels == 1, 2.0, -2.0) + rng.normal(0.0, 1.0, n)
    true_p1 = 1.0 / (1.0 + np.exp(-z))
    rng_labels = (rng.random(n) < true_p1).astype(np.int64)
    p1 = 1.0 / (1.0 + np.exp(-4.0 * z))
    return np.stack([1 - p1, p1], axis=1), rng_labels


def test_fit_temperature_recovers_the_overconfidence_factor():
    scores, labels = _overconfident(4000)
    assert fit_temperature(scores, labels, "sigmoid") == pytest.approx(4.0, rel=0.1)


def test_fit_temperature_is_about_one_for_a_calibrated_model():
    rng = np.random.default_rng(1)
    p1 = rng.random(4000)
    labels = (rng.random(4000) < p1).astype(np.int64)
    assert fit_temperature(np.stack([1 - p1, p1], axis=1), labels, "sigmoid") == pytest.approx(1.0, rel=0.1)


def test_threshold_accepts_at_most_the_target_share_of_unknown_photos():
    conf = np.linspace(0.5, 0.99, 101)  # 101 unknown photos
    threshold = pick_threshold(conf, 0.05)
    assert accepted(conf, threshold).sum() == 5
    assert accepted(conf, pick_threshold(conf, 0.0)).sum() == 0
    assert pick_threshold(conf, 1.0) == 0.0


def test_ties_at_the_threshold_are_rejected_together():
    conf = np.array([0.99, 0.99, 0.99, 0.6])
    assert accepted(conf, pick_threshold(conf, 0.5)).sum() == 0  # two may pass, but three are tied


def test_float32_confidences_are_compared_at_full_precision():
    conf = np.array([0.97, 0.96875, 0.5], dtype=np.float32)
    threshold = pick_threshold(conf, 1 / 3)  # one may pass
    assert accepted(conf, threshold).tolist() == [True, False, False]


def test_threshold_option_reads_a_probability_or_auto():
    from edgeclf.commands.runtime import parse_threshold
    from edgeclf.runtime.errors import ConfigError

    assert parse_threshold("auto") == (0.0, True)
    assert parse_threshold("AUTO ") == (0.0, True)
    assert parse_threshold("0.8") == (0.8, False)
    with pytest.raises(ConfigError, match="or auto"):
        parse_threshold("high")
