"""The one image → tensor function: bad files, every mode and format, EXIF, frames, draft, goldens.

No TensorFlow. Regenerate the golden values (only after a deliberate change to preprocessing)::

    .venv/bin/python tests/unit/test_preprocess.py --regenerate-golden
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeclf.runtime.dataset import Sample, list_images, load_samples
from edgeclf.runtime.errors import EdgeclfError, ImageDecodeError, InputShapeError
from edgeclf.runtime.manifest import InputSpec
from edgeclf.runtime.preprocess import DRAFT_OVERSAMPLING, FRAME_ORDERS, IMAGE_SUFFIXES, load_image, preprocess

if __name__ == "__main__":  # run as a script: make `helpers` importable as pytest does (tests/conftest.py)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers.images import (
    BAD_FILE_REASONS,
    BAD_FILE_WRITERS,
    encode,
    pattern_array,
    png_bytes_with_size,
    quadrant_array,
    write_png,
)

GOLDEN_PATH = Path(__file__).with_name("golden") / "preprocess_golden.json"
SPEC = InputSpec(height=24, width=32)


def _rgb(path_or_bytes, spec: InputSpec = SPEC) -> np.ndarray:
    out = preprocess(path_or_bytes, spec)
    assert out.dtype == np.uint8 and out.shape == spec.shape and out.flags["C_CONTIGUOUS"]
    return out.astype(np.int16)


def _same_size(array: np.ndarray) -> InputSpec:
    return InputSpec(height=array.shape[0], width=array.shape[1])


# --- bad files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(BAD_FILE_WRITERS))
def test_bad_file_raises_one_decode_error_naming_the_file(tmp_path: Path, kind: str) -> None:
    path = BAD_FILE_WRITERS[kind](tmp_path)
    with pytest.raises(ImageDecodeError) as caught:
        preprocess(path, SPEC)
    error = caught.value
    assert error.path == str(path)
    assert BAD_FILE_REASONS[kind] in error.reason
    message = str(error)
    assert message.startswith(str(path)) and "\n" not in message
    assert isinstance(error, EdgeclfError)  # the CLI prints it as one line, exit 1


@pytest.mark.parametrize("kind", ["corrupt-jpeg", "truncated-jpeg", "truncated-png", "not-an-image", "zero-byte"])
def test_bad_bytes_raise_decode_error_without_a_path(tmp_path: Path, kind: str) -> None:
    data = BAD_FILE_WRITERS[kind](tmp_path).read_bytes()
    with pytest.raises(ImageDecodeError) as caught:
        preprocess(data, SPEC)
    assert caught.value.path is None
    assert str(caught.value).startswith("<image>: ")


def test_a_lazily_opened_pil_image_that_fails_to_decode_is_a_decode_error(tmp_path: Path) -> None:
    path = BAD_FILE_WRITERS["truncated-png"](tmp_path)  # Image.open() reads only its header
    with Image.open(path) as image, pytest.raises(ImageDecodeError, match="corrupt or truncated") as caught:
        preprocess(image, SPEC)
    assert caught.value.path == str(path)


def test_missing_file_is_a_decode_error(tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError, match="no such file"):
        preprocess(tmp_path / "gone.jpg", SPEC)


def test_bomb_below_pillows_hard_limit_is_refused_by_our_pixel_limit() -> None:
    # 100 MP: above Pillow's warning threshold (89.5 MP) but below its hard error (179 MP), so it is
    # our own check that refuses it, with advice.
    with pytest.raises(ImageDecodeError, match=r"10000x10000 \(100 MP\).*downscale it first"):
        preprocess(png_bytes_with_size(10_000, 10_000), SPEC)


def test_max_pixels_is_honoured() -> None:
    data = encode(pattern_array(64, 48), "PNG")
    assert preprocess(data, SPEC, max_pixels=64 * 48).shape == SPEC.shape
    with pytest.raises(ImageDecodeError, match="decompression bombs"):
        preprocess(data, SPEC, max_pixels=64 * 48 - 1)


# --- modes ------------------------------------------------------------------------------------------


def test_grayscale_l_becomes_equal_rgb_channels() -> None:
    gray = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (24, 1))  # 24×32
    out = _rgb(encode(Image.fromarray(gray, "L"), "PNG"))
    assert (out == gray[:, :, None]).all()


def test_la_and_rgba_are_composited_on_white() -> None:
    rgba = np.zeros((24, 32, 4), np.uint8)
    rgba[:, :8] = (255, 0, 0, 255)  # opaque red
    rgba[:, 8:16] = (255, 0, 0, 0)  # fully transparent (colour must not leak)
    rgba[:, 16:24] = (0, 0, 255, 128)  # half-transparent blue
    rgba[:, 24:] = (0, 0, 0, 0)
    out = _rgb(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert (out[:, :8] == (255, 0, 0)).all()
    assert (out[:, 8:16] == 255).all()
    assert np.abs(out[:, 16:24] - (127, 127, 255)).max() <= 1
    assert (out[:, 24:] == 255).all()

    la = np.zeros((24, 32, 2), np.uint8)
    la[:, :16] = (40, 255)
    la[:, 16:] = (40, 0)
    out = _rgb(encode(Image.fromarray(la, "LA"), "PNG"))
    assert (out[:, :16] == 40).all() and (out[:, 16:] == 255).all()


def test_palette_without_transparency_keeps_its_colours() -> None:
    image = Image.new("P", (32, 24))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.paste(1, (16, 0, 32, 24))
    out = _rgb(encode(image, "PNG"))
    assert (out[:, :16] == (10, 20, 30)).all() and (out[:, 16:] == (200, 100, 50)).all()


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_with_transparency_is_composited_on_white(fmt: str) -> None:
    image = Image.new("P", (32, 24))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.paste(1, (16, 0, 32, 24))
    out = _rgb(encode(image, fmt, transparency=0))
    assert (out[:, :16] == 255).all(), "the transparent index must become white, not its palette colour"
    assert (out[:, 16:] == (200, 100, 50)).all()


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (32, 24), (0, 255, 255, 0))  # pure red in CMYK
    cmyk.paste((255, 0, 255, 0), (16, 0, 32, 24))  # pure green
    data = encode(cmyk, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    out = _rgb(data)
    assert np.abs(out[:, :12] - (255, 0, 0)).max() <= 6
    assert np.abs(out[:, 20:] - (0, 255, 0)).max() <= 6


def test_16_bit_grayscale_png_is_scaled_not_clipped() -> None:
    values = np.array([0, 1000, 32768, 65535], np.uint16)
    gray16 = np.repeat(np.repeat(values[None, :], 24, 0), 8, 1)  # 24×32, four 8-wide bands
    data = encode(Image.fromarray(gray16), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    out = _rgb(data)
    assert out[:, 0::8, 0].tolist() == [[0, 3, 127, 255]] * 24  # clipping would give 255 for 1000
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_dark_16_bit_png_stays_dark() -> None:
    # Values all below 256 in a 16-bit file are still 16-bit: nearly black, not full range.
    gray16 = np.full((24, 32), 200, np.uint16)
    assert _rgb(encode(Image.fromarray(gray16), "PNG")).max() == 0


def test_32_bit_integer_and_float_images() -> None:
    wide = Image.fromarray(np.repeat([[0, 1000, 32768, 65535]], 24, 0).repeat(8, 1).astype(np.int32), "I")
    assert _rgb(wide)[0, 0::8].tolist() == [[0, 0, 0], [3, 3, 3], [127, 127, 127], [255, 255, 255]]
    narrow = Image.fromarray(np.full((24, 32), 100, np.int32), "I")  # 8-bit range in an I image
    assert (_rgb(narrow) == 100).all()
    unit_float = Image.fromarray(np.full((24, 32), 0.5, np.float32), "F")
    assert (_rgb(unit_float) == 128).all()
    byte_float = Image.fromarray(np.full((24, 32), 200.0, np.float32), "F")
    assert (_rgb(byte_float) == 200).all()


def test_bilevel_image() -> None:
    image = Image.new("1", (32, 24), 0)
    image.paste(1, (16, 0, 32, 24))
    out = _rgb(encode(image, "PNG"))
    assert (out[:, :16] == 0).all() and (out[:, 16:] == 255).all()


# --- formats --------------------------------------------------------------------------------------

# suffix -> (Pillow format, save options, bound on the mean |difference|, bound on the max) — lossy
# formats measured at mean 1.6 / max 18 (JPEG q95) and 3.6 / 26 (GIF's 256-colour palette).
FORMATS = {
    ".jpg": ("JPEG", {"quality": 95}, 2.5, 30),
    ".jpeg": ("JPEG", {"quality": 95}, 2.5, 30),
    ".png": ("PNG", {}, 0, 0),
    ".bmp": ("BMP", {}, 0, 0),
    ".gif": ("GIF", {}, 5, 40),
    ".webp": ("WEBP", {"lossless": True}, 0, 0),
    ".tif": ("TIFF", {}, 0, 0),
    ".tiff": ("TIFF", {"compression": "tiff_lzw"}, 0, 0),
}


def test_every_listed_suffix_has_a_format_test() -> None:
    assert set(IMAGE_SUFFIXES) == set(FORMATS)


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_every_suffix_decodes_to_the_same_picture(tmp_path: Path, suffix: str) -> None:
    fmt, params, mean_bound, max_bound = FORMATS[suffix]
    array = pattern_array(32, 24)
    path = tmp_path / f"picture{suffix.upper()}"  # upper-case suffixes count too
    path.write_bytes(encode(array, fmt, **params))
    assert list_images(tmp_path) == ([path], [])
    out = _rgb(path)
    assert np.abs(out - array).mean() <= mean_bound
    assert np.abs(out - array).max() <= max_bound


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_image_gives_its_first_frame(fmt: str) -> None:
    frames = [Image.new("RGB", (32, 24), colour) for colour in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    params = {"lossless": True} if fmt == "WEBP" else {}
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **params)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    out = _rgb(data)
    assert np.abs(out - (255, 0, 0)).max() <= 2


# --- EXIF orientation -----------------------------------------------------------------------------


def _stored_for_orientation(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a camera stores so that a viewer honouring ``orientation`` shows ``upright``.

    Written from the EXIF 2.3 definitions of the tag (where the 0th row and 0th column of the stored
    image are in the visual picture), independently of Pillow's own transpose table.
    """
    return {
        1: lambda a: a,
        2: np.fliplr,  # 0th row top, 0th column right
        3: lambda a: np.rot90(a, 2),  # 0th row bottom, 0th column right
        4: np.flipud,  # 0th row bottom, 0th column left
        5: lambda a: a.transpose(1, 0, 2),  # 0th row left, 0th column top
        6: lambda a: np.rot90(a, 1),  # 0th row right, 0th column top
        7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),  # 0th row right, 0th column bottom
        8: lambda a: np.rot90(a, -1),  # 0th row left, 0th column bottom
    }[orientation](upright)


def _with_orientation(array: np.ndarray, orientation: int, fmt: str) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    params = {"quality": 95} if fmt == "JPEG" else {}
    return encode(np.ascontiguousarray(array), fmt, exif=exif.tobytes(), **params)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation: int, fmt: str) -> None:
    upright = quadrant_array(64, 48)
    data = _with_orientation(_stored_for_orientation(upright, orientation), orientation, fmt)
    out = _rgb(data, _same_size(upright))
    blocks = [out[:24, :32], out[:24, 32:], out[24:, :32], out[24:, 32:]]
    expected = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]
    for block, colour in zip(blocks, expected, strict=True):
        assert np.abs(block[3:-3, 3:-3].mean(axis=(0, 1)) - colour).max() < 12, (orientation, fmt)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_corrupt_exif_block_decodes_as_stored() -> None:
    # A truncated EXIF segment (seen in photos edited by buggy tools): orientation unknown -> as stored.
    exif = Image.Exif()
    exif[0x0112] = 6
    payload = b"Exif\x00\x00" + exif.tobytes()[:-6]
    good = encode(quadrant_array(64, 48), "JPEG", quality=95)
    data = good[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + good[2:]
    out = _rgb(data, InputSpec(48, 64))
    assert np.abs(out[3:21, 3:29].mean(axis=(0, 1)) - (255, 0, 0)).max() < 12


def test_exif_orientation_on_a_pil_image_source() -> None:
    upright = quadrant_array(64, 48)
    image = Image.open(io.BytesIO(_with_orientation(_stored_for_orientation(upright, 6), 6, "PNG")))
    assert np.array_equal(_rgb(image, _same_size(upright)), upright)


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_draft_keeps_enough_pixels_for_rotated_jpegs(orientation: int) -> None:
    upright = quadrant_array(1600, 1200)
    data = _with_orientation(_stored_for_orientation(upright, orientation), orientation, "JPEG")
    spec = InputSpec(height=150, width=200)  # asks for 400×300 decoded pixels at least
    image = load_image(data, draft_size=(spec.width * DRAFT_OVERSAMPLING, spec.height * DRAFT_OVERSAMPLING))
    assert image.size == (400, 300), "draft must scale the stored image by 4, in the upright orientation"
    out = preprocess(data, spec).astype(np.int16)
    assert np.abs(out[:75, :100].mean(axis=(0, 1)) - (255, 0, 0)).max() < 8


# --- numpy frames -------------------------------------------------------------------------------


def test_frames_in_every_channel_order_give_the_same_rgb() -> None:
    rgb = pattern_array(32, 24)
    alpha = np.full((24, 32, 1), 7, np.uint8)  # junk in the 4th byte must be ignored
    frames = {
        "RGB": rgb,
        "BGR": rgb[:, :, ::-1],
        "RGBA": np.concatenate([rgb, alpha], 2),
        "RGBX": np.concatenate([rgb, alpha], 2),
        "BGRA": np.concatenate([rgb[:, :, ::-1], alpha], 2),
        "BGRX": np.concatenate([rgb[:, :, ::-1], alpha], 2),
    }
    assert set(frames) | {"GRAY"} == set(FRAME_ORDERS)
    for order, frame in frames.items():
        out = preprocess(np.ascontiguousarray(frame), SPEC, color_order=order)
        assert np.array_equal(out, rgb), order


@pytest.mark.parametrize("shape", [(24, 32), (24, 32, 1)])
def test_gray_frames(shape: tuple[int, ...]) -> None:
    gray = pattern_array(32, 24)[:, :, 0]
    frame = gray.reshape(shape)
    out = preprocess(frame, SPEC, color_order="GRAY")
    assert np.array_equal(out, np.repeat(gray[:, :, None], 3, 2))
    if len(shape) == 2:  # a 2-D frame is gray whatever order is declared
        assert np.array_equal(preprocess(frame, SPEC), out)


def test_a_non_contiguous_frame_is_accepted() -> None:
    big = pattern_array(64, 48)
    view = big[::2, ::2]  # strided view, as slicing a camera buffer gives
    assert np.array_equal(preprocess(view, SPEC), np.ascontiguousarray(view))


@pytest.mark.parametrize(
    ("frame", "order", "message"),
    [
        (np.zeros((24, 32, 3), np.float32), "RGB", "dtype"),
        (np.zeros((24, 32, 4), np.uint8), "RGB", r"\(H, W, 3\)"),
        (np.zeros((24, 32, 3), np.uint8), "BGRA", r"\(H, W, 4\)"),
        (np.zeros((24, 32, 3), np.uint8), "GRAY", "grayscale"),
        (np.zeros((24, 32, 3), np.uint8), "YUV", "channel order"),
        (np.zeros((2, 24, 32, 3), np.uint8), "RGB", "shape"),
    ],
)
def test_bad_frames_raise_input_shape_error(frame: np.ndarray, order: str, message: str) -> None:
    with pytest.raises(InputShapeError, match=message):
        preprocess(frame, SPEC, color_order=order)


# --- resize and draft ---------------------------------------------------------------------------


def test_resize_uses_the_specs_filter() -> None:
    data = encode(pattern_array(64, 48), "PNG")
    outs = {f: preprocess(data, InputSpec(12, 16, resize_filter=f)) for f in ("nearest", "bilinear", "bicubic")}
    assert not np.array_equal(outs["nearest"], outs["bilinear"])
    assert not np.array_equal(outs["bilinear"], outs["bicubic"])
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((16, 12), Image.NEAREST))
    assert np.array_equal(outs["nearest"], expected)


@pytest.fixture(scope="module")
def large_photo_jpeg() -> bytes:
    """A 2400×1800 JPEG with smooth regions and fine texture, like a phone photo."""
    width, height = 2400, 1800
    rng = np.random.default_rng(0)
    texture = Image.fromarray(rng.integers(0, 256, (height // 8, width // 8), dtype=np.uint8))
    texture = np.asarray(texture.resize((width, height), Image.Resampling.BICUBIC), np.float32) - 128
    array = np.clip(pattern_array(width, height).astype(np.float32) + 0.5 * texture[:, :, None], 0, 255)
    return encode(array.astype(np.uint8), "JPEG", quality=90)


# Measured on this fixture (Pillow 13, libjpeg-turbo; mean |draft - full| in 0..255 units):
# 64² 0.22, 128² 0.24, 224² 0.62, 300² 0.30 with draft at 2× the model size (1.84 at 224² with 1×).
@pytest.mark.parametrize(("side", "bound"), [(64, 0.4), (128, 0.4), (224, 0.9), (300, 0.5)])
def test_draft_decode_is_close_to_the_full_decode(large_photo_jpeg: bytes, side: int, bound: float) -> None:
    spec = InputSpec(side, side)
    drafted = load_image(large_photo_jpeg, draft_size=(side * DRAFT_OVERSAMPLING, side * DRAFT_OVERSAMPLING))
    assert drafted.width < 2400, "the draft path must actually reduce the decode"
    fast = preprocess(large_photo_jpeg, spec, draft=True).astype(np.int16)
    full = preprocess(large_photo_jpeg, spec, draft=False).astype(np.int16)
    assert not np.array_equal(fast, full)
    difference = np.abs(fast - full)
    assert difference.mean() <= bound
    assert difference.max() <= 12


def test_nearest_filter_never_drafts(large_photo_jpeg: bytes) -> None:
    spec = InputSpec(64, 64, resize_filter="nearest")
    assert np.array_equal(
        preprocess(large_photo_jpeg, spec, draft=True), preprocess(large_photo_jpeg, spec, draft=False)
    )


def test_every_caller_gets_identical_tensors(tmp_path: Path, large_photo_jpeg: bytes) -> None:
    """The trainer (load_samples), the runtime (a path) and a camera upload (bytes) share one function."""
    path = tmp_path / "photo.jpg"
    path.write_bytes(large_photo_jpeg)
    small = write_png(tmp_path / "small.png")
    spec = InputSpec(96, 128)
    loaded = load_samples([Sample(path, 0), Sample(small, 1)], spec, workers=2)
    assert np.array_equal(loaded.images[0], preprocess(path, spec))
    assert np.array_equal(loaded.images[0], preprocess(large_photo_jpeg, spec))
    assert np.array_equal(loaded.images[1], preprocess(small, spec))
    assert np.array_equal(loaded.images[1], preprocess(Image.open(small), spec))


# --- golden values --------------------------------------------------------------------------------


def _golden_inputs() -> dict[str, tuple[bytes, InputSpec]]:
    """Small generated images and specs whose preprocessed values are stored in the golden file."""
    source = pattern_array(64, 48, seed=3)
    png, jpeg = encode(source, "PNG"), encode(source, "JPEG", quality=90)
    return {
        "png-bilinear-16x12": (png, InputSpec(12, 16, resize_filter="bilinear")),
        "png-bicubic-16x12": (png, InputSpec(12, 16, resize_filter="bicubic")),
        "png-nearest-16x12": (png, InputSpec(12, 16, resize_filter="nearest")),
        "png-bilinear-upscale-16x12": (encode(source[:6, :8], "PNG"), InputSpec(12, 16, resize_filter="bilinear")),
        "jpeg-q90-bilinear-16x12": (jpeg, InputSpec(12, 16, resize_filter="bilinear")),
    }


# PNG is lossless: only float rounding in the generated source can move a value (by 1).
# JPEG decoders may differ by a level or two across builds/CPUs (IDCT, upsampling).
GOLDEN_TOLERANCE = {"png": 1, "jpeg": 2}


def _compute_golden() -> dict[str, list]:
    return {name: preprocess(data, spec).tolist() for name, (data, spec) in _golden_inputs().items()}


@pytest.mark.parametrize("name", sorted(_golden_inputs()))
def test_golden_values(name: str) -> None:
    golden = json.loads(GOLDEN_PATH.read_text())
    data, spec = _golden_inputs()[name]
    expected = np.array(golden[name], np.int16)
    actual = preprocess(data, spec).astype(np.int16)
    assert actual.shape == expected.shape == spec.shape
    assert np.abs(actual - expected).max() <= GOLDEN_TOLERANCE[name.split("-")[0]]


def regenerate_golden() -> None:
    """Recompute and write the golden file (run after a deliberate change to preprocessing)."""
    GOLDEN_PATH.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN_PATH.write_text(json.dumps(_compute_golden(), separators=(",", ":")) + "\n")
    print(f"wrote {GOLDEN_PATH}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--regenerate-golden"]:
        regenerate_golden()
    else:
        sys.exit("usage: test_preprocess.py --regenerate-golden")
