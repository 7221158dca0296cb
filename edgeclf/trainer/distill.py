"""Knowledge distillation: a from-scratch student learns from a finished run's soft scores (``--teacher``).

The teacher is a finished run folder (typically the pretrained ``default``). Its scores become the
student's training targets, blended with the hard labels::

    target = alpha * hard_label + (1 - alpha) * teacher_scores_at_temperature_T

Binary cross-entropy (and categorical cross-entropy) is linear in its target, so the preset's own
loss on the blended target *is* ``alpha * CE(hard) + (1 - alpha) * CE(soft)``. ``T > 1`` softens the
teacher's scores (``sigmoid(logit / T)``, or ``softmax(log p / T)`` for several classes) so its
confidence, not only its decision, is passed on.

On two shared cores running the teacher (EfficientNet-Lite0 at 224: ~770 MFLOP a frame) inside the
input pipeline for every augmented batch of every epoch costs more than the student's whole
training, so the targets are computed once, before training: the un-augmented training photos
(the teacher sees its own decode of each file) plus ``copies`` augmented copies. Each copy is
augmented at the teacher's input size, scored by the teacher, then resized to the student's input
size, so both see the same augmented picture. An epoch is still one training-set's worth of steps,
drawn from the pool of copies, so the learning-rate schedule is the one the preset was tuned with.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeclf.kerasio import load_run_model, run_model_file
from edgeclf.runtime.dataset import Sample, list_images, load_samples
from edgeclf.runtime.errors import DatasetError
from edgeclf.runtime.fileio import sha256_file
from edgeclf.runtime.manifest import InputSpec, Manifest
from edgeclf.trainer.datasets import TrainingData, augment_to_uint8
from edgeclf.trainer.runlog import RunLog

_EPS = 1e-7
_BATCH = 32


@dataclass
class Teacher:
    """A finished run used as teacher: where it is, what it predicts, and its loaded model."""

    run_dir: Path
    manifest: Manifest
    model_file: Path
    unlabelled: tuple[Path, ...] = ()  # extra photos it labels (``--unlabelled``)
    model: Any = None  # loaded by :meth:`load`

    def load(self) -> Any:
        """Load the teacher's Keras model (once)."""
        if self.model is None:
            self.model = load_run_model(self.run_dir, self.manifest)
        return self.model

    def record(self) -> dict[str, Any]:
        """What the student's manifest keeps about its teacher."""
        return {
            "run_id": self.run_dir.name,
            "run_dir": str(self.run_dir),
            "model_sha256": sha256_file(self.model_file),
            "preset": self.manifest.preset,
            "input": [self.manifest.input.height, self.manifest.input.width],
            "test_accuracy": self.manifest.metrics.get("test_accuracy"),
        }


def open_teacher(run_dir: str | Path, labels: tuple[str, ...]) -> Teacher:
    """Check a teacher run before any training work: finished, readable, and with the data's labels.

    Raises:
        ManifestError: not a finished run, or its model file is missing or corrupt.
        DatasetError: its labels differ from the data's classes (or their order).
    """
    path = Path(run_dir).absolute()
    manifest = Manifest.load(path)
    model_file = run_model_file(path, manifest)
    if tuple(manifest.labels) != tuple(labels):
        raise DatasetError(
            f"--teacher {run_dir}: its labels {list(manifest.labels)} do not match the data's classes {list(labels)}; "
            "pick a teacher trained on the same classes"
        )
    return Teacher(path, manifest, model_file)


@dataclass
class DistilledData:
    """The student's training pool (uint8 images at its input size) and its blended targets."""

    images: np.ndarray
    targets: np.ndarray
    record: dict[str, Any] = field(default_factory=dict)  # for the manifest's training section
    seconds: float = 0.0  # teacher decode + augment + scoring
    originals: int = 0  # photos before copying (labelled + unlabelled): one epoch's worth


def temper(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Teacher probabilities softened at ``temperature`` (one sigmoid column, or softmax rows)."""
    p = np.clip(scores.astype(np.float64), _EPS, 1 - _EPS)
    if p.shape[-1] == 1:
        logits = np.log(p) - np.log1p(-p)
        return (1.0 / (1.0 + np.exp(-logits / temperature))).astype(np.float32)
    z = np.log(p) / temperature
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def hard_targets(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Labels as the student's target layout: one float column for two classes, one-hot otherwise."""
    if num_classes == 2:
        return labels.astype(np.float32).reshape(-1, 1)
    return np.eye(num_classes, dtype=np.float32)[labels]


def distilled_data(
    tf: Any,
    teacher: Teacher,
    data: TrainingData,
    augmentation: Any,
    *,
    alpha: float,
    temperature: float,
    copies: int,
    workers: int,
    log: RunLog,
    unlabelled: tuple[Path, ...] = (),
) -> DistilledData:
    """The un-augmented training photos plus ``copies`` augmented copies, with blended teacher targets.

    ``unlabelled`` photos (and their copies) join the pool with the teacher's scores alone as targets.
    """
    start = time.perf_counter()
    student = data.loaded["train"]
    own = _teacher_decode(data.folder.split("train"), teacher.manifest.input, student.paths, workers, data.folder.root)
    model = teacher.load()
    n_copies = copies if augmentation is not None else 0
    images, scores = _scored_copies(tf, model, own, student.images, augmentation, n_copies, data.spec, log)
    agreement = [float(np.mean(_top(s) == student.labels)) for s in scores]
    hard = np.tile(hard_targets(student.labels, data.num_classes), (len(scores), 1))
    targets = alpha * hard + (1.0 - alpha) * temper(np.concatenate(scores), temperature)
    pool, pool_targets = [np.concatenate(images)], [targets]
    extra = 0
    if unlabelled:
        samples = [Sample(path, 0) for path in unlabelled]
        theirs = load_samples(samples, data.spec, workers=workers)
        extra = len(theirs.paths)
        log(f"unlabelled photos: {extra} decoded" + (f", {len(theirs.failed)} skipped" if theirs.failed else ""))
        seen = _teacher_decode(samples, teacher.manifest.input, theirs.paths, workers, unlabelled[0].parent)
        more, more_scores = _scored_copies(tf, model, seen, theirs.images, augmentation, n_copies, data.spec, log)
        pool.append(np.concatenate(more))
        pool_targets.append(temper(np.concatenate(more_scores), temperature))
    seconds = time.perf_counter() - start
    log(
        f"teacher targets: {len(scores)} x {len(student.labels) + extra} images in {seconds:.1f}s; teacher agrees "
        f"with the labels on {agreement[0]:.1%} of the photos"
        + (f", {np.mean(agreement[1:]):.1%} of the augmented copies" if len(agreement) > 1 else "")
    )
    record = {
        **teacher.record(),
        "alpha": alpha,
        "temperature": temperature,
        "copies": len(scores) - 1,
        "unlabelled_images": extra,
        "agreement_with_labels": round(agreement[0], 6),
        "agreement_with_labels_augmented": round(float(np.mean(agreement[1:])), 6) if len(agreement) > 1 else None,
    }
    pool_images = np.concatenate(pool)
    return DistilledData(
        pool_images,
        np.concatenate(pool_targets).astype(np.float32),
        record,
        round(seconds, 2),
        len(student.labels) + extra,
    )


def _scored_copies(
    tf: Any,
    model: Any,
    own: np.ndarray,
    student_images: np.ndarray,
    augmentation: Any,
    copies: int,
    spec: InputSpec,
    log: RunLog,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The student's images and the teacher's scores: the photos as decoded, then ``copies`` augmented copies.

    Each copy is augmented at the teacher's size (``own``), scored there, then resized to ``spec``.
    """
    images, scores = [student_images], [_predict(model, own)]
    for k in range(copies):
        augmented = np.concatenate(
            [augment_to_uint8(tf, augmentation, own[i : i + _BATCH]).numpy() for i in range(0, len(own), _BATCH)]
        )
        scores.append(_predict(model, augmented))
        images.append(_resize(tf, augmented, spec))
        log(f"teacher scored augmented copy {k + 1} of {copies} ({len(own)} images)")
    return images, scores


def _teacher_decode(
    samples: list[Sample], spec: InputSpec, paths: tuple[Path, ...], workers: int, root: Path
) -> np.ndarray:
    """The student's photos decoded at the teacher's input (the one preprocessing path)."""
    loaded = load_samples(samples, spec, workers=workers)
    if loaded.paths != paths:  # both decodes skip the same unreadable files, so this holds
        raise DatasetError(f"{root}: the photos changed while they were decoded; run again")
    return loaded.images


def _predict(model: Any, images: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [np.asarray(model.predict_on_batch(images[i : i + _BATCH])) for i in range(0, len(images), _BATCH)]
    )


def _resize(tf: Any, images: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 images to the student's size (antialiased bilinear, rounded back to uint8)."""
    if images.shape[1:3] == (spec.height, spec.width):
        return images
    out = [
        tf.image.resize(tf.cast(images[i : i + _BATCH], tf.float32), (spec.height, spec.width), antialias=True)
        for i in range(0, len(images), _BATCH)
    ]
    return np.clip(np.round(np.concatenate([o.numpy() for o in out])), 0, 255).astype(np.uint8)


def _top(scores: np.ndarray) -> np.ndarray:
    return (scores[:, 0] > 0.5).astype(np.int64) if scores.shape[-1] == 1 else scores.argmax(axis=-1)


def unlabelled_images(folder: str | Path) -> tuple[Path, ...]:
    """The image files under ``folder`` (recursive), for ``--unlabelled``.

    Raises:
        DatasetError: the folder is missing or holds no images.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"--unlabelled {folder}: no such folder; pass a folder of photos")
    images, _ = list_images(root)
    if not images:
        raise DatasetError(f"--unlabelled {folder}: no images in it; pass a folder of photos")
    return tuple(images)


def student_dataset(tf: Any, distilled: DistilledData, *, batch_size: int, seed: int) -> Any:
    """An endless shuffled pipeline over the pool of copies (fit takes ``steps_per_epoch`` from it)."""
    dataset = tf.data.Dataset.from_tensor_slices((distilled.images, distilled.targets))
    dataset = dataset.shuffle(len(distilled.images), seed=seed, reshuffle_each_iteration=True).repeat()
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def soft_target_accuracy(y_true: Any, y_pred: Any) -> Any:
    """Share of images whose predicted class is the blended target's (= the label when alpha >= 0.5)."""
    import keras

    ops = keras.ops
    if y_pred.shape[-1] == 1:
        return ops.cast(ops.equal(y_true[..., 0] > 0.5, y_pred[..., 0] > 0.5), "float32")
    return ops.cast(ops.equal(ops.argmax(y_true, axis=-1), ops.argmax(y_pred, axis=-1)), "float32")


def compile_student(
    model: Any, preset: Any, num_classes: int, *, learning_rate: float, steps: int, epochs: int
) -> None:
    """The preset's optimiser and schedule, its loss on soft targets, accuracy against the targets."""
    import keras

    accuracy = keras.metrics.MeanMetricWrapper(soft_target_accuracy, name="accuracy")
    optimizer = preset.optimizer_for(learning_rate, steps_per_epoch=steps, epochs=epochs)
    model.compile(optimizer=optimizer, loss=preset.loss(num_classes, soft=True), metrics=[accuracy])


def restore_standard_compile(model: Any, preset: Any, num_classes: int) -> None:
    """Compile with the preset's own loss and metric (same optimizer), so ``model.keras`` loads anywhere."""
    model.compile(optimizer=model.optimizer, loss=preset.loss(num_classes), metrics=["accuracy"])


def steps_per_epoch(train_count: int, batch_size: int) -> int:
    """One training set's worth of steps, as without a teacher."""
    return max(1, math.ceil(train_count / batch_size))
