"""Re-framing photos to a camera's aspect ratio (research/reframe_photos.py): no scaling, centred."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.research import research_script
from PIL import Image

_reframe = research_script("reframe_photos")
main, parse_aspect, reframe = _reframe.main, _reframe.parse_aspect, _reframe.reframe


def _photo(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(1, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("size", [(400, 300), (300, 400), (160, 90), (500, 100)])
def test_pad_keeps_every_pixel_centred_on_a_16_by_9_canvas(size):
    photo = _photo(*size)
    out = reframe(photo, "pad", (16, 9))
    assert abs(out.width * 9 - out.height * 16) <= 16
    assert out.width >= photo.width and out.height >= photo.height
    left, top = (out.width - photo.width) // 2, (out.height - photo.height) // 2
    inner = np.asarray(out)[top : top + photo.height, left : left + photo.width]
    np.testing.assert_array_equal(inner, np.asarray(photo))
    assert np.asarray(out).sum() == np.asarray(photo).sum()  # the rest is black


def test_crop_keeps_the_centre_band_at_full_resolution():
    photo = _photo(400, 300)
    out = reframe(photo, "crop", (16, 9))
    assert out.size == (400, 225)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(photo)[37:262])


def test_aspect_is_parsed_or_refused():
    assert parse_aspect("16:9") == (16, 9)
    import argparse

    for bad in ("16x9", "0:9", "a:b"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_aspect(bad)


def test_a_split_is_written_per_class(tmp_path):
    for split in ("train", "validation", "test"):
        for label in ("cats", "dogs"):
            folder = tmp_path / "data" / split / label
            folder.mkdir(parents=True)
            _photo(40, 30).save(folder / f"{label}1.jpg")
    assert main([str(tmp_path / "data"), str(tmp_path / "out"), "--mode", "pad"]) == 0
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written == ["cats/cats1.png", "dogs/dogs1.png"]
    with Image.open(tmp_path / "out" / "cats" / "cats1.png") as image:
        assert image.size == (53, 30)
