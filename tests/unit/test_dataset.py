"""The one folder scanner and splitter: layouts, classes, deterministic splits, refusals, bad files.

No TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.images import BAD_FILE_WRITERS, write_good_images, write_jpeg, write_text_file

from edgeclf.runtime.dataset import (
    DEFAULT_FRACTIONS,
    LabelledFolder,
    Sample,
    list_images,
    load_samples,
    open_labelled_folder,
    reopen_from_manifest,
)
from edgeclf.runtime.errors import DatasetError, ImageDecodeError
from edgeclf.runtime.manifest import InputSpec

SPEC = InputSpec(height=12, width=16)


def make_class_folder(root: Path, counts: dict[str, int]) -> Path:
    """``root/<class>/img_NNN.jpg`` with ``counts[class]`` images each."""
    for label, count in counts.items():
        write_good_images(root / label, count)
    return root


def make_split_folder(root: Path, counts: dict[str, dict[str, int]]) -> Path:
    """``root/<split>/<class>/img_NNN.jpg``; ``counts[split][class]`` images each (0: empty folder)."""
    for split, per_class in counts.items():
        for label, count in per_class.items():
            (root / split / label).mkdir(parents=True, exist_ok=True)
            write_good_images(root / split / label, count)
    return root


def names(folder: LabelledFolder, split: str) -> list[str]:
    return [sample.path.relative_to(folder.root).as_posix() for sample in folder.split(split)]


# --- class discovery and layouts ------------------------------------------------------------------


def test_classes_are_the_sorted_subfolder_names(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "data", {"zebra": 4, "apple": 4, "Mango": 4, "banana": 4})
    (root / ".ipynb_checkpoints").mkdir()  # hidden folders are not classes
    write_good_images(root / ".ipynb_checkpoints", 2)
    folder = open_labelled_folder(root)
    assert folder.labels == ("Mango", "apple", "banana", "zebra")  # plain sorted(): upper case first
    for split in folder.splits.values():
        for sample in split:
            assert sample.path.parent.name == folder.labels[sample.label]


def test_split_layout_with_and_without_test(tmp_path: Path) -> None:
    counts = {"train": {"cars": 5, "bikes": 4}, "validation": {"cars": 2, "bikes": 3}}
    root = make_split_folder(tmp_path / "a", counts)
    folder = open_labelled_folder(root)
    assert folder.layout == "splits" and folder.labels == ("bikes", "cars")
    assert set(folder.splits) == {"train", "validation"}
    assert folder.split("test") == ()
    assert folder.counts() == {"train": {"bikes": 4, "cars": 5}, "validation": {"bikes": 3, "cars": 2}}
    assert folder.fractions is None and folder.seed is None

    root = make_split_folder(tmp_path / "b", {**counts, "test": {"cars": 1, "bikes": 2}})
    folder = open_labelled_folder(root)
    assert folder.counts()["test"] == {"bikes": 2, "cars": 1}
    assert names(folder, "test") == ["test/bikes/img_000.jpg", "test/bikes/img_001.jpg", "test/cars/img_000.jpg"]


def test_class_layout_is_split_by_the_fractions(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "data", {"cars": 20, "bikes": 40})
    folder = open_labelled_folder(root, fractions=(0.6, 0.25, 0.15), seed=1)
    assert folder.layout == "classes"
    assert folder.counts() == {
        "train": {"bikes": 24, "cars": 12},
        "validation": {"bikes": 10, "cars": 5},
        "test": {"bikes": 6, "cars": 3},
    }
    every = [s.path for split in folder.splits.values() for s in split]
    assert len(every) == len(set(every)) == 60, "each file in exactly one split"
    assert folder.fractions == (0.6, 0.25, 0.15) and folder.seed == 1


def test_class_layout_without_test_fraction_has_no_test_split(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "data", {"a": 10, "b": 10})
    folder = open_labelled_folder(root, fractions=(0.8, 0.2, 0.0))
    assert set(folder.splits) == {"train", "validation"}
    assert folder.counts()["validation"] == {"a": 2, "b": 2}


# --- deterministic split --------------------------------------------------------------------------


def test_same_seed_gives_the_same_split_and_another_seed_a_different_one(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "data", {"cars": 30, "bikes": 30})
    first = open_labelled_folder(root, seed=7)
    again = open_labelled_folder(root, seed=7)
    other = open_labelled_folder(root, seed=8)
    for split in ("train", "validation", "test"):
        assert names(first, split) == names(again, split)
    assert names(first, "validation") != names(other, "validation")
    assert first.counts() == other.counts()  # a different shuffle, the same sizes


def test_split_does_not_depend_on_where_the_folder_lives(tmp_path: Path) -> None:
    a = open_labelled_folder(make_class_folder(tmp_path / "one", {"cars": 12, "bikes": 12}), seed=3)
    b = open_labelled_folder(make_class_folder(tmp_path / "elsewhere" / "two", {"cars": 12, "bikes": 12}), seed=3)
    assert names(a, "validation") == names(b, "validation")
    assert a.fingerprint() == b.fingerprint()  # same files, same sizes: same data


def test_adding_a_class_does_not_reshuffle_the_others(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "data", {"cars": 25, "bikes": 25})
    before = open_labelled_folder(root, seed=5)
    write_good_images(root / "airplanes", 25)  # sorts first: a shared shuffle would move every other class
    after = open_labelled_folder(root, seed=5)
    assert after.labels == ("airplanes", "bikes", "cars")
    for split in ("train", "validation", "test"):
        old = names(before, split)
        assert [n for n in names(after, split) if not n.startswith("airplanes/")] == old


# --- refusals -------------------------------------------------------------------------------------


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"no such data folder.*--data DIR"):
        open_labelled_folder(tmp_path / "nope")


def test_a_file_instead_of_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a folder"):
        open_labelled_folder(write_jpeg(tmp_path / "photo.jpg"))


@pytest.mark.parametrize("classes", [{}, {"cars": 5}])
def test_fewer_than_two_classes_is_refused(tmp_path: Path, classes: dict[str, int]) -> None:
    root = make_class_folder(tmp_path / "data", classes)
    root.mkdir(exist_ok=True)
    with pytest.raises(DatasetError, match=rf"found {len(classes)} class folder.*at least two"):
        open_labelled_folder(root)


def test_one_class_in_split_layout_is_refused(tmp_path: Path) -> None:
    root = make_split_folder(tmp_path / "data", {"train": {"cars": 3}, "validation": {"cars": 2}})
    with pytest.raises(DatasetError, match="at least two"):
        open_labelled_folder(root)


def test_empty_class_is_refused_in_both_layouts(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "a", {"cars": 5, "bikes": 0})
    (root / "bikes").mkdir(exist_ok=True)
    write_text_file(root / "bikes")  # a class with only non-images is empty too
    with pytest.raises(DatasetError, match="'bikes' has no images"):
        open_labelled_folder(root)

    root = make_split_folder(tmp_path / "b", {"train": {"cars": 3, "bikes": 3}, "validation": {"cars": 2, "bikes": 0}})
    with pytest.raises(DatasetError, match=r"validation/bikes: class 'bikes' has no images"):
        open_labelled_folder(root)


def test_class_missing_from_validation_is_refused(tmp_path: Path) -> None:
    root = make_split_folder(tmp_path / "data", {"train": {"cars": 3, "bikes": 3}, "validation": {"cars": 2}})
    with pytest.raises(DatasetError, match=r"validation: class 'bikes' is missing"):
        open_labelled_folder(root)


def test_class_only_in_validation_is_refused(tmp_path: Path) -> None:
    counts = {"train": {"cars": 3, "bikes": 3}, "validation": {"cars": 2, "bikes": 2, "boats": 2}}
    root = make_split_folder(tmp_path / "data", counts)
    with pytest.raises(DatasetError, match=r"classes \['boats'\] are not in train/"):
        open_labelled_folder(root)


def test_train_without_validation_is_refused(tmp_path: Path) -> None:
    root = make_split_folder(tmp_path / "data", {"train": {"cars": 3, "bikes": 3}})
    with pytest.raises(DatasetError, match="no validation/ folder"):
        open_labelled_folder(root)


def test_class_missing_from_an_existing_test_split_is_refused(tmp_path: Path) -> None:
    counts = {"train": {"cars": 3, "bikes": 3}, "validation": {"cars": 2, "bikes": 2}, "test": {"cars": 2}}
    root = make_split_folder(tmp_path / "data", counts)
    with pytest.raises(DatasetError, match=r"test: class 'bikes' is missing.*or drop test/"):
        open_labelled_folder(root)


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.8, 0.3, 0.1), (1.2, -0.1, -0.1)])
def test_bad_fractions_are_refused(tmp_path: Path, fractions: tuple[float, ...]) -> None:
    root = make_class_folder(tmp_path / "data", {"cars": 10, "bikes": 10})
    with pytest.raises(DatasetError, match="fractions must be three non-negative numbers summing to 1"):
        open_labelled_folder(root, fractions=fractions)


def test_too_few_images_to_split_off_validation_is_refused(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "data", {"cars": 10, "bikes": 2})
    with pytest.raises(DatasetError, match=r"bikes: only 2 image\(s\), too few"):
        open_labelled_folder(root)


def test_labels_that_do_not_match_the_model_are_refused(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "data", {"cars": 5, "bikes": 5})
    assert open_labelled_folder(root, labels=["bikes", "cars"]).labels == ("bikes", "cars")
    with pytest.raises(DatasetError, match=r"do not match the model's labels \['cars', 'bikes'\]"):
        open_labelled_folder(root, labels=["cars", "bikes"])


# --- non-images and undecodable files -------------------------------------------------------------


def test_non_image_files_are_ignored_and_listed(tmp_path: Path) -> None:
    root = make_split_folder(
        tmp_path / "data", {"train": {"cars": 3, "bikes": 3}, "validation": {"cars": 2, "bikes": 2}}
    )
    notes = write_text_file(root / "train" / "cars")
    meta = write_text_file(root / "validation" / "bikes", "labels.csv")
    (root / "train" / "cars" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden: neither image nor listed
    folder = open_labelled_folder(root)
    assert sorted(folder.ignored) == sorted([notes, meta])
    assert all(s.path.suffix == ".jpg" for split in folder.splits.values() for s in split)
    assert folder.counts()["train"] == {"bikes": 3, "cars": 3}


def test_list_images_sorts_recurses_and_skips_hidden(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "b.JPG")
    write_jpeg(tmp_path / "a.png")
    write_jpeg(tmp_path / "nested" / "c.webp")
    write_jpeg(tmp_path / ".hidden" / "d.jpg")
    write_jpeg(tmp_path / ".e.jpg")
    folder_like = BAD_FILE_WRITERS["folder-named-like-image"](tmp_path)
    text = write_text_file(tmp_path)
    images, others = list_images(tmp_path)
    assert images == [tmp_path / "a.png", tmp_path / "b.JPG", tmp_path / "nested" / "c.webp"]
    assert others == [text]
    assert folder_like not in images


def test_load_samples_skips_and_reports_every_bad_file(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "data", {"cars": 6, "bikes": 6})
    bad = {kind: writer(root / "cars") for kind, writer in BAD_FILE_WRITERS.items()}
    folder = open_labelled_folder(root, fractions=(1.0 - 0.5, 0.5, 0.0), seed=0)
    samples = [s for split in folder.splits.values() for s in split]
    bad_files = {path for path in bad.values() if path.is_file()}
    assert bad_files <= {s.path for s in samples}, "bad files with image suffixes are scanned as images"
    assert bad["folder-named-like-image"] not in {s.path for s in samples}

    loaded = load_samples(samples, SPEC, workers=3)
    assert loaded.images.shape == (12, *SPEC.shape) and loaded.images.dtype == np.uint8
    assert {Path(e.path) for e in loaded.failed} == bad_files
    assert all(isinstance(e, ImageDecodeError) for e in loaded.failed)
    assert set(loaded.paths).isdisjoint(bad_files)
    # labels stay aligned with paths after the skips
    for path, label in zip(loaded.paths, loaded.labels, strict=True):
        assert folder.labels[label] == path.parent.name
    assert loaded.labels.dtype == np.int64
    assert np.array_equal(loaded.images[0], np.asarray(_preprocessed(loaded.paths[0])))


def _preprocessed(path: Path) -> np.ndarray:
    from edgeclf.runtime.preprocess import preprocess

    return preprocess(path, SPEC)


def test_load_samples_of_nothing(tmp_path: Path) -> None:
    loaded = load_samples([], SPEC)
    assert loaded.images.shape == (0, *SPEC.shape) and loaded.labels.shape == (0,)
    assert loaded.failed == () and loaded.paths == ()


def test_load_samples_keeps_the_sample_order(tmp_path: Path) -> None:
    paths = write_good_images(tmp_path, 8)
    samples = [Sample(p, i % 2) for i, p in enumerate(reversed(paths))]
    loaded = load_samples(samples, SPEC, workers=4)
    assert loaded.paths == tuple(s.path for s in samples)
    assert loaded.labels.tolist() == [s.label for s in samples]


# --- counts, fingerprint, manifest round trip -----------------------------------------------------


def test_counts_show_class_imbalance(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "data", {"rare": 10, "common": 50})
    counts = open_labelled_folder(root, fractions=(0.8, 0.2, 0.0)).counts()
    assert counts == {"train": {"common": 40, "rare": 8}, "validation": {"common": 10, "rare": 2}}


def test_fingerprint_changes_when_the_data_changes(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "data", {"cars": 8, "bikes": 8})
    base = open_labelled_folder(root).fingerprint()
    assert open_labelled_folder(root).fingerprint() == base
    assert len(base) == 64

    target = sorted((root / "cars").glob("*.jpg"))[0]
    original = target.read_bytes()
    write_jpeg(target, quality=40)  # the same picture, re-encoded: different bytes and size
    assert target.read_bytes() != original
    assert open_labelled_folder(root).fingerprint() != base
    target.write_bytes(original)
    assert open_labelled_folder(root).fingerprint() == base

    renamed = target.with_name("renamed.jpg")
    target.rename(renamed)
    assert open_labelled_folder(root).fingerprint() != base
    renamed.rename(target)

    write_good_images(root / "bikes", 1, start=100)
    assert open_labelled_folder(root).fingerprint() != base


def test_fingerprint_depends_on_the_split_assignment(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "data", {"cars": 12, "bikes": 12})
    assert open_labelled_folder(root, seed=0).fingerprint() != open_labelled_folder(root, seed=1).fingerprint()


def test_describe_and_reopen_give_the_same_splits(tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "data", {"cars": 15, "bikes": 15})
    folder = open_labelled_folder(root, fractions=(0.6, 0.2, 0.2), seed=11)
    described = folder.describe()
    assert described["layout"] == "classes" and described["seed"] == 11
    assert described["fractions"] == [0.6, 0.2, 0.2]
    assert described["fingerprint"] == folder.fingerprint()
    reopened = reopen_from_manifest(described, folder.labels)
    assert reopened.splits == folder.splits
    with pytest.raises(DatasetError, match="do not match the model's labels"):
        reopen_from_manifest(described, ("bikes", "cars", "trucks"))
    with pytest.raises(DatasetError, match="records no data folder"):
        reopen_from_manifest({}, folder.labels)


def test_default_fractions_sum_to_one() -> None:
    assert abs(sum(DEFAULT_FRACTIONS) - 1) < 1e-9 and len(DEFAULT_FRACTIONS) == 3
