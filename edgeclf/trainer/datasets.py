"""The training data: every split decoded once, checked, reported, and fed to Keras through tf.data.

Every image is decoded exactly once, through :func:`edgeclf.runtime.dataset.load_samples` (the one
preprocessing path the runtime also uses), and held in memory as uint8; tf.data then shuffles,
augments on the fly (the preset's augmentation layer), batches and prefetches.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeclf.runtime.dataset import LabelledFolder, LoadedImages, load_samples
from edgeclf.runtime.errors import DatasetError, EdgeclfError
from edgeclf.runtime.manifest import InputSpec
from edgeclf.trainer.runlog import RunLog

# A split whose largest class is this many times its smallest is reported as imbalanced.
IMBALANCE_RATIO = 1.5


@dataclass
class TrainingData:
    """The decoded splits of one labelled folder at one input size, and their report."""

    folder: LabelledFolder
    spec: InputSpec
    loaded: dict[str, LoadedImages]
    report: dict[str, Any]  # report.json: skipped/ignored files, class balance (+ metrics at the end)

    @property
    def num_classes(self) -> int:
        """Number of labels (two means one sigmoid output)."""
        return len(self.folder.labels)

    def targets(self, split: str) -> np.ndarray:
        """The Keras targets of ``split`` (see :func:`targets`)."""
        return targets(self.loaded[split].labels, self.num_classes)


def load_training_data(folder: LabelledFolder, spec: InputSpec, workers: int, log: RunLog) -> TrainingData:
    """Decode every split of ``folder`` at ``spec`` once; refuse what cannot be trained on.

    Raises:
        DatasetError: no validation split, or a class without readable train/validation images.
        EdgeclfError: the decoded images would not fit in half the machine's RAM.
    """
    if not folder.split("validation"):
        raise DatasetError(
            f"{folder.root}: the validation split is empty (--val-fraction 0?); training needs validation images "
            "to pick its best epoch: use --val-fraction 0.15 or a validation/ folder"
        )
    check_memory(folder, spec)
    loaded = load_splits(folder, spec, workers, log)
    return TrainingData(folder, spec, loaded, data_report(folder, loaded))


def load_splits(folder: LabelledFolder, spec: InputSpec, workers: int, log: RunLog) -> dict[str, LoadedImages]:
    """Decode train, validation and (if any) test; every class must have train and validation images."""
    loaded: dict[str, LoadedImages] = {}
    for name in ("train", "validation", "test"):
        samples = folder.split(name)
        if not samples:
            continue
        start = time.perf_counter()
        loaded[name] = load_samples(samples, spec, workers=workers)
        log(
            f"decoded {name}: {len(loaded[name].labels)} images in {time.perf_counter() - start:.1f}s"
            + (f", {len(loaded[name].failed)} skipped" if loaded[name].failed else "")
        )
    for name in ("train", "validation"):
        present = set(loaded[name].labels.tolist()) if name in loaded else set()
        missing = [label for i, label in enumerate(folder.labels) if i not in present]
        if missing:
            skipped = len(loaded[name].failed) if name in loaded else 0
            hint = "see the skipped files above and add images" if skipped else "add images"
            raise DatasetError(f"{folder.root}: no readable {name} images for class(es) {missing}; {hint}")
    return loaded


def check_memory(folder: LabelledFolder, spec: InputSpec) -> None:
    """Refuse up front a data set whose decoded images would not fit in half the machine's RAM.

    Every image is decoded once and held as uint8; past RAM the OOM killer ends the run without a
    word, after minutes of decoding.
    """
    count = sum(len(samples) for samples in folder.splits.values())
    needed = count * spec.height * spec.width * spec.channels
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return
    if needed > total // 2:
        raise EdgeclfError(
            f"{count} images at {spec.width}x{spec.height} need {needed / 1e9:.1f} GB decoded, more than half of "
            f"this machine's {total / 1e9:.1f} GB of RAM; use a smaller --image-size or fewer images"
        )


def data_report(folder: LabelledFolder, loaded: dict[str, LoadedImages]) -> dict[str, Any]:
    """Skipped files, ignored files and class balance, as written to ``report.json``."""
    skipped = [
        {"split": name, "path": err.path, "reason": err.reason} for name, part in loaded.items() for err in part.failed
    ]
    balance: dict[str, Any] = {}
    for name, part in loaded.items():
        counts = {label: int(np.sum(part.labels == i)) for i, label in enumerate(folder.labels)}
        low, high = min(counts.values()), max(counts.values())
        ratio = math.inf if low == 0 else high / low
        balance[name] = {
            "counts": counts,
            "ratio": None if math.isinf(ratio) else round(ratio, 3),
            "imbalanced": ratio >= IMBALANCE_RATIO,
        }
    return {
        "skipped": {"count": len(skipped), "files": skipped},
        "ignored": {"count": len(folder.ignored), "files": [str(p) for p in folder.ignored]},
        "class_balance": balance,
    }


def log_report(report: dict[str, Any], log: RunLog) -> None:
    """Print the skipped/ignored files and each split's class counts."""
    skipped = report["skipped"]
    if skipped["count"]:
        log(f"skipped {skipped['count']} unreadable file(s):")
        for item in skipped["files"]:
            log(f"  {item['path']}: {item['reason']}")
    if report["ignored"]["count"]:
        log(f"ignored {report['ignored']['count']} non-image file(s) (see report.json)")
    for name, info in report["class_balance"].items():
        counts = ", ".join(f"{k}={v}" for k, v in info["counts"].items())
        note = f"  IMBALANCED (largest/smallest = {info['ratio']})" if info["imbalanced"] else ""
        log(f"{name}: {counts}{note}")


def targets(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Keras targets: float (N, 1) for two classes (one sigmoid unit), int class ids otherwise."""
    if num_classes == 2:
        return labels.astype(np.float32).reshape(-1, 1)
    return labels.astype(np.int64)


def make_dataset(
    tf: Any,
    images: np.ndarray,
    targets: np.ndarray,
    *,
    batch_size: int,
    shuffle_seed: int | None = None,
    augmentation: Callable[..., Any] | None = None,
) -> Any:
    """The training/evaluation tf.data pipeline over already-decoded uint8 images.

    The decoded arrays are the cache (decoded once, before the first epoch); each epoch reshuffles
    (``shuffle_seed`` not None), augments batches on the fly, and prefetches the next batch while
    the model trains on the current one. Augmented batches are rounded back to uint8, the model's
    input dtype, so training sees exactly what the deployed model will be given.
    """
    dataset = tf.data.Dataset.from_tensor_slices((images, targets))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(images), seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if augmentation is not None:

        def _augment(x: Any, y: Any) -> tuple[Any, Any]:
            return augment_to_uint8(tf, augmentation, x), y

        dataset = dataset.map(_augment, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def augment_to_uint8(tf: Any, augmentation: Callable[..., Any], images: Any) -> Any:
    """One random augmentation of a uint8 batch, rounded and clipped back to uint8 (the model's input)."""
    x = augmentation(tf.cast(images, tf.float32), training=True)
    return tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)
