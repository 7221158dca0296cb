"""Resize modes (squash, crop, letterbox): what each keeps of a 4:3 and a 16:9 photo, and how the
mode travels in the manifest, the embedded metadata, the training config and the command line.

The test picture: a red image with a green square in its centre, as tall as the image. Squash
stretches the square into a tall bar, crop keeps only the square, letterbox keeps the whole image
(square still square) between grey bars.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgeclf.runtime.embedded import append_tflite_metadata, read_embedded_manifest
from edgeclf.runtime.errors import EdgeclfError, ManifestError
from edgeclf.runtime.manifest import RESIZE_MODES, InputSpec, Manifest
from edgeclf.runtime.preprocess import LETTERBOX_FILL, centre_crop_box, letterbox_size, preprocess

RED, GREEN = (255, 0, 0), (0, 255, 0)
SIDE = 32
FLATBUFFER = b"\x1c\x00\x00\x00TFL3" + bytes(64)


def _square_in_centre(width: int, height: int) -> np.ndarray:
    """``height × width`` red RGB image with a centred green ``height × height`` square."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = RED
    left = (width - height) // 2
    image[:, left : left + height] = GREEN
    return image


def _spec(mode: str, resize_filter: str = "nearest") -> InputSpec:
    return InputSpec(SIDE, SIDE, resize_filter=resize_filter, resize=mode)


def _is(pixels: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(pixels == np.array(colour, np.uint8), axis=-1)


def _green_columns(out: np.ndarray) -> int:
    return int(np.count_nonzero(_is(out, GREEN).all(axis=0)))


# (width, height) of a 4:3 and a 16:9 frame; the green square's width after squashing to 32 px.
FRAMES = {"4:3": (120, 90), "16:9": (160, 90)}


@pytest.mark.parametrize("aspect", FRAMES)
def test_squash_keeps_everything_but_stretches_the_square(aspect):
    width, height = FRAMES[aspect]
    out = preprocess(_square_in_centre(width, height), _spec("squash"))
    assert out.shape == (SIDE, SIDE, 3)
    # The square's share of the width is kept, so it becomes a bar narrower than it is tall.
    assert _green_columns(out) == round(SIDE * height / width)
    assert _is(out[:, 0], RED).all() and _is(out[:, -1], RED).all()
    assert not _is(out, LETTERBOX_FILL).any()


@pytest.mark.parametrize("aspect", FRAMES)
def test_crop_keeps_only_the_centre(aspect):
    width, height = FRAMES[aspect]
    out = preprocess(_square_in_centre(width, height), _spec("crop"))
    assert out.shape == (SIDE, SIDE, 3)
    assert _is(out, GREEN).all()


@pytest.mark.parametrize("aspect", FRAMES)
def test_crop_with_a_smooth_filter_still_shows_only_the_centre(aspect):
    width, height = FRAMES[aspect]
    out = preprocess(_square_in_centre(width, height), _spec("crop", "bilinear"))
    # The filter may blend a sliver of the red border into the outermost columns, nothing more.
    assert _is(out[:, 1:-1], GREEN).all()
    assert out[:, :, 0].mean() < 255 * 2 / SIDE


@pytest.mark.parametrize("aspect", FRAMES)
def test_letterbox_keeps_everything_with_grey_bars(aspect):
    width, height = FRAMES[aspect]
    out = preprocess(_square_in_centre(width, height), _spec("letterbox"))
    inner_w, inner_h = letterbox_size((width, height), (SIDE, SIDE))
    assert inner_w == SIDE and inner_h == round(SIDE * height / width)
    top = (SIDE - inner_h) // 2
    bars = np.concatenate([out[:top], out[top + inner_h :]])
    assert bars.shape[0] == SIDE - inner_h > 0
    assert _is(bars, LETTERBOX_FILL).all()
    picture = out[top : top + inner_h]
    # The whole picture is there: red on both sides, and the square stays square.
    assert _is(picture[:, 0], RED).all() and _is(picture[:, -1], RED).all()
    green = _is(picture, GREEN)
    assert np.count_nonzero(green.all(axis=0)) == inner_h
    assert green.any(axis=1).all()


def test_letterbox_puts_the_bars_on_the_sides_of_a_portrait_photo():
    portrait = np.ascontiguousarray(np.transpose(_square_in_centre(160, 90), (1, 0, 2)))  # 90 wide, 160 tall
    out = preprocess(portrait, _spec("letterbox"))
    inner_w, inner_h = letterbox_size((90, 160), (SIDE, SIDE))
    assert inner_h == SIDE and inner_w < SIDE
    left = (SIDE - inner_w) // 2
    assert _is(out[:, :left], LETTERBOX_FILL).all() and _is(out[:, left + inner_w :], LETTERBOX_FILL).all()
    assert not _is(out[:, left : left + inner_w], LETTERBOX_FILL).any()


def test_the_three_modes_agree_when_the_aspect_ratio_already_matches():
    rng = np.random.default_rng(0)
    square = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    outs = [preprocess(square, _spec(mode, "bilinear")) for mode in RESIZE_MODES]
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_a_bgr_camera_frame_gets_the_same_pixels_as_the_rgb_file(mode):
    rgb = _square_in_centre(160, 90)
    rgb[:10, :10] = (10, 20, 200)  # an asymmetric corner, so a channel swap would show
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    spec = _spec(mode, "bilinear")
    from_file = preprocess(buffer.getvalue(), spec)
    from_frame = preprocess(np.ascontiguousarray(rgb[:, :, ::-1]), spec, color_order="BGR")
    np.testing.assert_array_equal(from_frame, from_file)


@pytest.mark.parametrize(
    ("size", "box"),
    [
        ((160, 90), (35, 0, 125, 90)),
        ((90, 160), (0, 35, 90, 125)),
        ((64, 64), (0, 0, 64, 64)),
        ((1, 500), (0, 249, 1, 250)),
    ],
)
def test_centre_crop_box_is_centred_and_square_for_a_square_model(size, box):
    assert centre_crop_box(size, (SIDE, SIDE)) == box


def test_crop_to_a_non_square_model_keeps_the_model_aspect_ratio():
    assert centre_crop_box((400, 400), (32, 24)) == (0, 50, 400, 350)
    out = preprocess(_square_in_centre(400, 400), InputSpec(24, 32, resize_filter="nearest", resize="crop"))
    assert out.shape == (24, 32, 3)


# -- the mode in the contract -----------------------------------------------------------------------


def _manifest(mode: str) -> Manifest:
    return Manifest(("bikes", "cars"), InputSpec(SIDE, SIDE, resize=mode), "sigmoid", "lite0")


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_manifest_round_trips_the_resize_mode(mode):
    data = _manifest(mode).to_dict()
    assert data["input"]["resize"] == mode
    assert Manifest.from_dict(data).input.resize == mode


def test_a_manifest_written_before_resize_modes_means_squash():
    data = _manifest("crop").to_dict()
    del data["input"]["resize"]
    assert Manifest.from_dict(data).input.resize == "squash"


@pytest.mark.parametrize("value", ["zoom", "CROP", "", 3, None])
def test_an_unknown_resize_mode_is_refused_in_one_line(value):
    data = _manifest("crop").to_dict()
    data["input"]["resize"] = value
    with pytest.raises(ManifestError) as error:
        Manifest.from_dict(data)
    message = str(error.value)
    assert "\n" not in message and "resize" in message


def test_unknown_resize_mode_names_the_known_ones():
    with pytest.raises(ManifestError, match="unknown resize mode 'zoom'; known: squash, crop, letterbox"):
        InputSpec(SIDE, SIDE, resize="zoom")


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_the_embedded_metadata_carries_the_resize_mode(tmp_path, mode):
    path = tmp_path / "model.tflite"
    path.write_bytes(append_tflite_metadata(FLATBUFFER, _manifest(mode).to_embedded()))
    embedded = read_embedded_manifest(path)
    assert embedded is not None and embedded.input.resize == mode


def test_train_config_takes_the_preset_default_unless_given():
    from edgeclf.trainer.presets import PRESETS
    from edgeclf.trainer.train import TrainConfig

    preset = PRESETS["lite0"]
    assert TrainConfig(data="d", preset="lite0").resolved(preset).resize == preset.resize
    assert TrainConfig(data="d", preset="lite0", resize="letterbox").resolved(preset).resize == "letterbox"
    with pytest.raises(EdgeclfError, match="unknown resize mode 'zoom'"):
        TrainConfig(data="d", resize="zoom")


def test_every_preset_default_is_a_known_mode_and_reaches_its_input_spec():
    from edgeclf.trainer.presets import PRESETS

    for preset in PRESETS.values():
        assert preset.resize in RESIZE_MODES
        assert preset.input_spec().resize == preset.resize
        assert preset.input_spec(resize="crop").resize == "crop"


def test_cli_train_refuses_an_unknown_resize_mode_as_a_usage_error(tmp_path):
    from edgeclf.cli import app

    result = CliRunner().invoke(app, ["train", "--data", str(tmp_path), "--resize", "zoom"])
    assert result.exit_code == 2
    assert "zoom" in result.output
