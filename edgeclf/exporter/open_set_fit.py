"""Fit the "none of the above" calibration at export: a temperature and a false-accept threshold.

The temperature is fitted on the validation images' Keras probabilities; the threshold is the
calibrated top-1 confidence that at most ``target`` of the photos in ``--unknown-data`` (photos of
other kinds than the model's classes) reach. What it costs in-distribution (validation photos
rejected as unknown) is measured and stored next to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeclf.runtime.dataset import LoadedImages, Sample, list_images, load_samples
from edgeclf.runtime.errors import DatasetError
from edgeclf.runtime.manifest import Artifact, Manifest, OpenSet, TensorInfo
from edgeclf.runtime.open_set import accepted, calibrated, fit_temperature, pick_threshold


def load_unknown(manifest: Manifest, unknown_dir: Path) -> np.ndarray:
    """The photos of other kinds in ``unknown_dir`` (searched recursively), preprocessed, uint8 ``(N, H, W, 3)``.

    Raises:
        DatasetError: the folder is missing or holds no readable image.
    """
    if not Path(unknown_dir).is_dir():
        raise DatasetError(f"{unknown_dir}: no such folder; pass --unknown-data DIR of photos of other kinds")
    paths, _ = list_images(Path(unknown_dir))
    unknown = load_samples([Sample(p, 0) for p in paths], manifest.input)
    if not len(unknown.images):
        raise DatasetError(f"{unknown_dir}: no readable images of other kinds (found {len(paths)} image files)")
    return unknown.images


def fit_open_set(
    manifest: Manifest,
    validation: LoadedImages,
    reference: np.ndarray,
    unknown_dir: Path,
    target: float,
    score: Callable[[np.ndarray], np.ndarray],
) -> OpenSet:
    """Fit the temperature on ``validation`` and the threshold on the photos of ``unknown_dir``.

    Args:
        manifest: the run's manifest (input spec, activation).
        validation: the validation images and their labels.
        reference: the Keras probabilities of ``validation``.
        unknown_dir: a folder of images of other kinds (searched recursively).
        target: the false-accept rate allowed on those images (0.05 = 5%).
        score: Keras probabilities of a uint8 batch.

    Raises:
        DatasetError: the folder is missing or holds no readable image.
    """
    unknown = load_unknown(manifest, unknown_dir)
    return fit_on_scores(
        manifest.output_activation, reference, validation.labels, score(unknown), target, str(unknown_dir)
    )


def fit_on_scores(
    activation: str,
    known_scores: np.ndarray,
    known_labels: np.ndarray,
    unknown_scores: np.ndarray,
    target: float,
    unknown_source: str,
    extremes: np.ndarray | None = None,
) -> OpenSet:
    """The temperature and threshold fitted on one model's own scores (Keras's, or one exported file's).

    Args:
        activation: the output activation (``sigmoid`` or ``softmax``).
        known_scores: the model's probabilities on the validation images ``(N, C)``.
        known_labels: their true labels ``(N,)``.
        unknown_scores: the model's probabilities on the photos of other kinds ``(M, C)``.
        target: the false-accept rate allowed on those photos.
        unknown_source: where those photos came from (recorded).
        extremes: :func:`extreme_scores` of a quantised file. When the threshold that meets ``target``
            is beyond what some label can ever score (photos of other kinds pile up on the output's
            last step too), it is lowered to the highest one every label reaches, so no label is
            always ``unknown``; ``measured`` then says the false-accept rate this costs and
            ``capped_from`` the threshold the target asked for.
    """
    temperature = fit_temperature(known_scores, known_labels, activation)
    unknown_conf = calibrated(unknown_scores, activation, temperature).max(axis=1)
    known = calibrated(known_scores, activation, temperature)
    # Stored with 6 decimals, rounded up: rounding down could let the last rejected photo through.
    threshold = min(1.0, math.ceil(pick_threshold(unknown_conf, target) * 1e6) / 1e6)
    wanted = threshold
    if extremes is not None:
        # Rounded down by at least half a step: a ceiling rounded up would be just out of reach again.
        reachable = float(np.diag(calibrated(extremes, activation, temperature)).min())
        ceiling = math.floor(reachable * 1e6 - 0.5) / 1e6
        threshold = min(threshold, ceiling)
    kept = accepted(known.max(axis=1), threshold)
    correct = known.argmax(axis=1) == np.asarray(known_labels)
    measured = {
        "unknown_images": len(unknown_conf),
        "unknown_source": unknown_source,
        "false_accept": round(float(np.mean(accepted(unknown_conf, threshold))), 6),
        "validation_images": len(kept),
        "false_reject": round(float(np.mean(~kept)), 6),
        "accuracy_of_accepted": round(float(np.mean(correct[kept])), 6) if kept.any() else None,
        "wrong_rejected": int(np.sum(~kept & ~correct)),
        "right_rejected": int(np.sum(~kept & correct)),
    }
    if threshold != wanted:
        measured["capped_from"] = wanted
    return OpenSet(temperature=temperature, threshold=threshold, target_false_accept=target, measured=measured)


def unreachable_labels(manifest: Manifest, artifact: Artifact) -> list[str]:
    """Labels that ``artifact`` can never give with ``--threshold auto``: its output cannot reach the threshold.

    The threshold checked is the file's own (fitted on its own scores) when it has one, else the
    manifest's. A quantised output spans ``(qmin - zero_point) * scale`` to
    ``(qmax - zero_point) * scale``. A threshold fitted on the Keras model's float scores can be out
    of reach: TFLite's uint8 sigmoid (scale 1/256) peaks at 255/256 for the second label; measured
    on a cats-vs-dogs model whose Keras threshold was 0.998, the int8 file turned every dog away.
    The first label (output 0) has no such ceiling, nor do softmax outputs, whose other entries can
    reach 0.
    """
    open_set, outputs = artifact.open_set or manifest.open_set, artifact.outputs
    if open_set is None or open_set.threshold is None or not outputs:
        return []
    extremes = extreme_scores(manifest.output_activation, outputs[0])
    if extremes is None:
        return []
    best = np.diag(calibrated(extremes, "sigmoid", open_set.temperature))
    reached = accepted(best, open_set.threshold)
    return [label for label, ok in zip(manifest.labels, reached, strict=True) if not ok]


def extreme_scores(activation: str, output: TensorInfo) -> np.ndarray | None:
    """Row ``i``: the scores of the output that most favour label ``i``; ``None`` when every label
    can reach a confidence of 1 (float outputs, softmax outputs)."""
    if activation != "sigmoid" or not output.quantized or output.dtype not in ("uint8", "int8"):
        return None
    qmin, qmax = (0, 255) if output.dtype == "uint8" else (-128, 127)
    zero = output.zero_point or 0
    low, high = (float(np.clip((q - zero) * float(output.scale), 0.0, 1.0)) for q in (qmin, qmax))
    return np.array([[1.0 - low, low], [1.0 - high, high]])


def unreachable_warning(manifest: Manifest, artifact: Artifact) -> str | None:
    """One line saying which labels ``artifact`` always answers ``unknown`` for, or ``None``."""
    labels = unreachable_labels(manifest, artifact)
    if not labels:
        return None
    open_set = artifact.open_set or manifest.open_set
    threshold = open_set.threshold if open_set else None
    return (
        f"{artifact.format}: its {artifact.outputs[0].dtype} output cannot reach the unknown threshold {threshold:.4f} "
        f"for {', '.join(repr(x) for x in labels)}: --threshold auto would answer unknown for every such photo; "
        "use a float file with --threshold auto, or export with a larger --false-accept"
    )
