"""A data folder's classes and images stay inside it; a photo has one class; names fit one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.images import write_jpeg

from edgeclf.runtime.dataset import list_images, open_labelled_folder
from edgeclf.runtime.errors import DatasetError


def _classes(root: Path, counts: dict[str, int]) -> Path:
    for label, n in counts.items():
        for i in range(n):
            write_jpeg(root / label / f"img_{i:03d}.jpg")
    return root


def test_a_class_folder_linked_to_its_parent_is_refused_by_name(tmp_path: Path) -> None:
    root = _classes(tmp_path / "data", {"cars": 6, "bikes": 6})
    for i in range(5):  # photos outside --data that the link would pull in
        write_jpeg(tmp_path / "private" / f"secret_{i}.jpg")
    os.symlink("..", root / "escape")
    with pytest.raises(DatasetError, match=r"escape: class folder leads outside the data folder"):
        open_labelled_folder(root)


def test_an_image_linked_from_outside_is_refused_by_name(tmp_path: Path) -> None:
    root = _classes(tmp_path / "data", {"cars": 6, "bikes": 6})
    outside = write_jpeg(tmp_path / "elsewhere.jpg")
    os.symlink(outside, root / "cars" / "linked.jpg")
    with pytest.raises(DatasetError, match=r"1 image\(s\) lead outside the data folder.*linked\.jpg"):
        open_labelled_folder(root)


def test_one_photo_under_two_classes_is_an_error(tmp_path: Path) -> None:
    root = _classes(tmp_path / "data", {"cars": 6, "bikes": 6})
    os.symlink(root / "cars" / "img_000.jpg", root / "bikes" / "also_a_bike.jpg")
    with pytest.raises(DatasetError, match=r"reachable under two classes, 'bikes'.*'cars'"):
        open_labelled_folder(root)


def test_the_same_in_split_layout(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for split in ("train", "validation"):
        _classes(root / split, {"cars": 3, "bikes": 3})
    os.symlink("../../..", root / "train" / "zzz")
    with pytest.raises(DatasetError, match="leads outside the data folder"):
        open_labelled_folder(root)


def test_links_that_stay_inside_are_fine(tmp_path: Path) -> None:
    root = _classes(tmp_path / "data", {"cars": 6, "bikes": 6})
    (root / "cars" / "more").symlink_to(root / "cars")  # a loop inside: not followed by the scan
    folder = open_labelled_folder(root)
    assert sum(len(v) for v in folder.splits.values()) == 12


def test_a_class_name_with_a_newline_is_refused(tmp_path: Path) -> None:
    root = _classes(tmp_path / "data", {"cars": 6, "bi\nkes": 6})
    with pytest.raises(DatasetError, match=r"class folder 'bi\\nkes' has a control character"):
        open_labelled_folder(root)


def test_tiff_photos_are_found_by_folder_scans(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(folder / "a.tiff")
    Image.new("RGB", (8, 8), (1, 2, 3)).save(folder / "b.TIF")
    images, others = list_images(folder)
    assert [p.name for p in images] == ["a.tiff", "b.TIF"] and others == []
