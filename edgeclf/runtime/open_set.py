""" "None of the above": a temperature-scaled confidence and a threshold below which a photo is ``unknown``.

At export, :func:`fit_temperature` scales the model's logits so its confidence matches how often it
is right on the validation split (one parameter, fitted by minimising the negative log-likelihood),
and :func:`pick_threshold` chooses the confidence that only ``target`` of a set of photos of *other*
kinds reach (the false-accept rate). Both are stored in the manifest's ``open_set`` entry;
``--threshold auto`` at run time prints ``unknown`` for a photo whose calibrated confidence is below
the threshold. numpy only.
"""

from __future__ import annotations

import numpy as np

UNKNOWN_LABEL = "unknown"
# Probabilities are clipped away from 0 and 1 before taking logs: an int8 sigmoid output reaches
# exactly 0 or 1 (its scale is 1/256), whose logit is infinite.
_EPS = 1e-6


def logits(scores: np.ndarray, activation: str) -> np.ndarray:
    """Per-label logits ``(N, C)`` recovered from probabilities (softmax: log p, up to a constant per row)."""
    p = np.clip(np.asarray(scores, dtype=np.float64), _EPS, 1.0 - _EPS)
    if activation == "sigmoid":
        z = np.log(p[:, 1]) - np.log(p[:, 0])
        return np.stack([np.zeros_like(z), z], axis=1)  # softmax of [0, z] is [1 - sigmoid(z), sigmoid(z)]
    return np.log(p)


def calibrated(scores: np.ndarray, activation: str, temperature: float) -> np.ndarray:
    """Temperature-scaled probabilities ``(N, C)``; ``temperature`` 1.0 returns the model's own (clipped) ones."""
    z = logits(scores, activation) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _nll(z: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    s = z / temperature
    s = s - s.max(axis=1, keepdims=True)
    log_p = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    return float(-np.mean(log_p[np.arange(len(labels)), labels]))


def fit_temperature(scores: np.ndarray, labels: np.ndarray, activation: str) -> float:
    """The temperature in [0.05, 20] minimising the negative log-likelihood of ``labels``.

    A golden-section search on log T (the NLL is smooth and unimodal in T for fixed logits).
    """
    z = logits(scores, activation)
    labels = np.asarray(labels, dtype=np.int64)
    lo, hi = np.log(0.05), np.log(20.0)
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = _nll(z, labels, np.exp(a)), _nll(z, labels, np.exp(b))
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = _nll(z, labels, np.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = _nll(z, labels, np.exp(b))
    return round(float(np.exp((lo + hi) / 2.0)), 6)


def pick_threshold(unknown_confidence: np.ndarray, target: float) -> float:
    """The lowest threshold at which at most ``target`` of the unknown photos are accepted.

    A photo is accepted when its confidence is ``>= threshold``; the threshold is put just above
    the confidence of the last unknown photo that must be rejected.
    """
    conf = np.sort(np.asarray(unknown_confidence, dtype=np.float64))[::-1]
    allowed = int(np.floor(target * len(conf) + 1e-9))  # how many unknown photos may pass
    if allowed >= len(conf):
        return 0.0
    return float(min(1.0, np.nextafter(conf[allowed], np.inf)))


def accepted(confidence: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean mask of photos whose calibrated confidence reaches ``threshold``."""
    # In float64: NumPy 2 compares a float32 array with a Python float in float32, which rounds a
    # threshold placed one float64 step above a confidence back onto it.
    return np.asarray(confidence, dtype=np.float64) >= threshold
