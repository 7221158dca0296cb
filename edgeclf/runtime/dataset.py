"""Labelled image folders: the one place that finds images, classes and splits.

Two layouts are understood (the seed's convention and a plain folder of classes)::

    DATA/train/<class>/*, DATA/validation/<class>/* [, DATA/test/<class>/*]   -> layout "splits"
    DATA/<class>/*                                                            -> layout "classes"

A "classes" folder is split deterministically into train/validation/test by a seeded shuffle per
class, so the trainer, the exporter (calibration, validation) and the benchmarks all see the same
files for the same ``(root, fractions, seed)``. Classes are the sorted subfolder names.

Decoding goes through :func:`edgeclf.runtime.preprocess.preprocess`; files that cannot be decoded are
skipped and reported, never a crash.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeclf.runtime.errors import DatasetError, ImageDecodeError
from edgeclf.runtime.manifest import InputSpec
from edgeclf.runtime.preprocess import IMAGE_SUFFIXES, preprocess
from edgeclf.runtime.progress import track

SPLIT_NAMES = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)


@dataclass(frozen=True)
class Sample:
    """One labelled file."""

    path: Path
    label: int


@dataclass(frozen=True)
class LabelledFolder:
    """The splits of a data folder, in class order ``labels``."""

    root: Path
    layout: str  # "splits" or "classes"
    labels: tuple[str, ...]
    splits: dict[str, tuple[Sample, ...]]
    fractions: tuple[float, float, float] | None = None
    seed: int | None = None
    ignored: tuple[Path, ...] = field(default=())  # files with a non-image suffix

    def split(self, name: str) -> tuple[Sample, ...]:
        """Samples of one split (empty tuple when the split does not exist)."""
        return self.splits.get(name, ())

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split: {label: count}}`` for reports and the manifest."""
        out: dict[str, dict[str, int]] = {}
        for name, samples in self.splits.items():
            per_label = dict.fromkeys(self.labels, 0)
            for sample in samples:
                per_label[self.labels[sample.label]] += 1
            out[name] = per_label
        return out

    def fingerprint(self) -> str:
        """SHA-256 over every (split, label, relative path, size): changes when the data does."""
        digest = hashlib.sha256()
        for name in sorted(self.splits):
            for sample in self.splits[name]:
                rel = sample.path.relative_to(self.root).as_posix()
                size = sample.path.stat().st_size if sample.path.exists() else -1
                digest.update(f"{name}\t{self.labels[sample.label]}\t{rel}\t{size}\n".encode())
        return digest.hexdigest()

    def describe(self) -> dict:
        """What the manifest records so later stages can rebuild the same splits."""
        return {
            "root": str(self.root),
            "layout": self.layout,
            "fractions": list(self.fractions) if self.fractions else None,
            "seed": self.seed,
            "counts": self.counts(),
            "fingerprint": self.fingerprint(),
        }


def list_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """Return ``(images, others)``: files under ``folder`` (recursive, sorted) by suffix.

    Hidden files (``.DS_Store``…) are neither. A file with an image suffix may still fail to decode;
    that is found when it is read.
    """
    images: list[Path] = []
    others: list[Path] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        (images if path.suffix.lower() in IMAGE_SUFFIXES else others).append(path)
    return images, others


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _check_class_name(class_dir: Path) -> None:
    name = class_dir.name
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        # A label is one line of labels.txt and one cell of every table: a newline would split it.
        raise DatasetError(
            f"{class_dir.parent}: class folder {name!r} has a control character (newline, tab…) in its name; rename it"
        )


def _scan_class(root: Path, class_dir: Path) -> tuple[list[Path], list[Path]]:
    """The class folder's images and other files, all confined to ``root`` (the data folder).

    A class folder or image that resolves outside the data folder (a symlink to ``..`` or to
    another tree) is refused by name: training on files nobody meant to give it is worse than stopping.
    """
    _check_class_name(class_dir)
    real_root = root.resolve()
    if not class_dir.resolve().is_relative_to(real_root):
        raise DatasetError(
            f"{class_dir}: class folder leads outside the data folder {root} (to {class_dir.resolve()}); "
            "refused — copy the images in, or make the link point inside the data folder"
        )
    images, others = list_images(class_dir)
    outside = [p for p in images if not p.resolve().is_relative_to(real_root)]
    if outside:
        shown = ", ".join(str(p) for p in outside[:3]) + (f" and {len(outside) - 3} more" if len(outside) > 3 else "")
        raise DatasetError(
            f"{class_dir}: {len(outside)} image(s) lead outside the data folder {root}: {shown}; refused"
        )
    return images, others


def _check_one_label_per_photo(root: Path, labels: Sequence[str], samples: Iterable[Sample]) -> None:
    """The same file (by its real path) under two classes would teach the model both labels at once."""
    seen: dict[Path, Sample] = {}
    for sample in samples:
        real = sample.path.resolve()
        first = seen.setdefault(real, sample)
        if first.label != sample.label:
            raise DatasetError(
                f"{root}: one photo is reachable under two classes, {labels[first.label]!r} ({first.path}) and "
                f"{labels[sample.label]!r} ({sample.path}); give each photo one class"
            )


def open_labelled_folder(
    root: str | Path,
    *,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    labels: Sequence[str] | None = None,
) -> LabelledFolder:
    """Find classes and splits under ``root``.

    Args:
        root: a "splits" folder (``train/``, ``validation/``, optional ``test/``) or a folder of classes.
        fractions: train/validation/test fractions for a "classes" folder (must sum to 1).
        seed: the shuffle seed of that split.
        labels: expected class names (e.g. from a manifest); a folder with other classes is refused.

    Raises:
        DatasetError: missing folder, fewer than two classes, an empty class, or a class missing
            from the validation split — each with what to do.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: no such data folder; pass --data DIR with one subfolder per class")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder; pass --data DIR with one subfolder per class")
    names = {p.name for p in _class_dirs(root)}
    if "train" in names:
        return _open_split_layout(root, labels)
    return _open_class_layout(root, tuple(fractions), seed, labels)


def _check_labels(root: Path, found: Sequence[str], expected: Sequence[str] | None) -> tuple[str, ...]:
    if len(found) < 2:
        raise DatasetError(
            f"{root}: found {len(found)} class folder(s) {list(found)}; a classifier needs at least two "
            "(one subfolder of images per class)"
        )
    if expected is not None and tuple(found) != tuple(expected):
        raise DatasetError(f"{root}: classes {list(found)} do not match the model's labels {list(expected)}")
    return tuple(found)


def _open_split_layout(root: Path, expected: Sequence[str] | None) -> LabelledFolder:
    train_dir = root / "train"
    labels = _check_labels(train_dir, [p.name for p in _class_dirs(train_dir)], expected)
    splits: dict[str, tuple[Sample, ...]] = {}
    ignored: list[Path] = []
    for split in SPLIT_NAMES:
        split_dir = root / split
        if not split_dir.is_dir():
            if split == "validation":
                raise DatasetError(
                    f"{root}: has train/ but no validation/ folder; add validation/<class>/ images "
                    "or pass a plain folder of classes to split automatically"
                )
            continue
        present = {p.name for p in _class_dirs(split_dir)}
        extra = sorted(present - set(labels))
        if extra:
            raise DatasetError(f"{split_dir}: classes {extra} are not in train/ ({list(labels)})")
        samples: list[Sample] = []
        for index, label in enumerate(labels):
            class_dir = split_dir / label
            if not class_dir.is_dir():
                if split == "test":
                    raise DatasetError(f"{split_dir}: class {label!r} is missing; add {class_dir}/ or drop test/")
                raise DatasetError(f"{split_dir}: class {label!r} is missing; add {class_dir}/ with images")
            images, others = _scan_class(root, class_dir)
            ignored.extend(others)
            if not images and split != "test":
                raise DatasetError(f"{class_dir}: class {label!r} has no images ({', '.join(IMAGE_SUFFIXES)})")
            samples.extend(Sample(path, index) for path in images)
        splits[split] = tuple(samples)
    _check_one_label_per_photo(root, labels, (s for part in splits.values() for s in part))
    return LabelledFolder(root, "splits", labels, splits, ignored=tuple(ignored))


def _open_class_layout(
    root: Path, fractions: tuple[float, ...], seed: int, expected: Sequence[str] | None
) -> LabelledFolder:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise DatasetError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    labels = _check_labels(root, [p.name for p in _class_dirs(root)], expected)
    splits: dict[str, list[Sample]] = {name: [] for name in SPLIT_NAMES}
    ignored: list[Path] = []
    for index, label in enumerate(labels):
        images, others = _scan_class(root, root / label)
        ignored.extend(others)
        if not images:
            raise DatasetError(f"{root / label}: class {label!r} has no images ({', '.join(IMAGE_SUFFIXES)})")
        # Seed per class from the label name, so adding a class does not reshuffle the others.
        rng = random.Random(f"{seed}:{label}")
        order = list(images)
        rng.shuffle(order)
        n_val = round(len(order) * fractions[1])
        n_test = round(len(order) * fractions[2])
        if fractions[1] > 0 and n_val == 0:
            raise DatasetError(
                f"{root / label}: only {len(order)} image(s), too few to split off a validation set; add images"
            )
        parts = {
            "validation": order[:n_val],
            "test": order[n_val : n_val + n_test],
            "train": order[n_val + n_test :],
        }
        for name, paths in parts.items():
            splits[name].extend(Sample(path, index) for path in sorted(paths))
    _check_one_label_per_photo(root, labels, (s for part in splits.values() for s in part))
    if not splits["test"]:
        del splits["test"]
    return LabelledFolder(
        root,
        "classes",
        labels,
        {k: tuple(v) for k, v in splits.items()},
        fractions=(float(fractions[0]), float(fractions[1]), float(fractions[2])),
        seed=seed,
        ignored=tuple(ignored),
    )


def reopen_from_manifest(data: dict, labels: Sequence[str]) -> LabelledFolder:
    """Rebuild the training run's splits from ``manifest.data`` (see :meth:`LabelledFolder.describe`)."""
    if not data or "root" not in data:
        raise DatasetError("the manifest records no data folder; pass the images explicitly (e.g. --validate-on DIR)")
    fractions = data.get("fractions") or DEFAULT_FRACTIONS
    return open_labelled_folder(data["root"], fractions=fractions, seed=int(data.get("seed") or 0), labels=labels)


@dataclass(frozen=True)
class LoadedImages:
    """Decoded model inputs of some samples, and the files that could not be decoded."""

    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) int64
    paths: tuple[Path, ...]
    failed: tuple[ImageDecodeError, ...]


def load_samples(samples: Iterable[Sample], spec: InputSpec, *, workers: int = 4) -> LoadedImages:
    """Decode samples through :func:`preprocess` in a thread pool; skip and collect the bad ones."""
    samples = list(samples)

    def _one(sample: Sample) -> np.ndarray | ImageDecodeError:
        try:
            return preprocess(sample.path, spec)
        except ImageDecodeError as error:
            return error

    results: list[np.ndarray | ImageDecodeError] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, track("decoding", len(samples)) as advance:
        for result in pool.map(_one, samples):
            results.append(result)
            advance()
    good = [(s, r) for s, r in zip(samples, results, strict=True) if isinstance(r, np.ndarray)]
    failed = tuple(r for r in results if isinstance(r, ImageDecodeError))
    images = np.stack([r for _, r in good]) if good else np.zeros((0, *spec.shape), np.uint8)
    return LoadedImages(
        images=images,
        labels=np.array([s.label for s, _ in good], dtype=np.int64),
        paths=tuple(s.path for s, _ in good),
        failed=failed,
    )
