"""Property-based tests of the three parsers of untrusted bytes: whatever arrives ends in a result or
an ``EdgeclfError`` — never another exception, a hang (each example has a deadline) or a blow-up.

- the manifest reader (:meth:`Manifest.load`: bytes -> JSON -> typed fields),
- the embedded-metadata readers (the ZIP appended to a ``.tflite``, the protobuf walk over an ``.onnx``),
- the image loader (:func:`preprocess`).

Inputs are random bytes and, more usefully, valid files with bytes flipped, cut or spliced.
"""

from __future__ import annotations

import io
import json
import struct
from datetime import timedelta

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from edgeclf.runtime.embedded import append_tflite_metadata, read_onnx_payload, read_tflite_payload
from edgeclf.runtime.errors import EdgeclfError
from edgeclf.runtime.manifest import RESIZE_MODES, Artifact, InputSpec, Manifest, TensorInfo
from edgeclf.runtime.preprocess import preprocess

# Modest example counts: the fast suite stays fast (a few seconds per property).
FAST = settings(
    max_examples=150,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

SPEC = InputSpec(16, 16)
_T_IN = TensorInfo("images", "uint8", (1, 16, 16, 3), 1.0, 0)
_T_OUT = TensorInfo("scores", "uint8", (1, 1), 0.00390625, 0)
VALID = Manifest(
    ("cars", "elephants"),
    SPEC,
    "sigmoid",
    "tiny",
    metrics={"val_accuracy": 0.9},
    artifacts=(Artifact("tflite-int8", "int8", "m.tflite", 10, "ab" * 32, "litert", (_T_IN,), (_T_OUT,)),),
)


def _mutations(valid: bytes) -> st.SearchStrategy[bytes]:
    """``valid`` with some bytes overwritten, cut short, or with junk spliced in."""

    def flip(edits: list[tuple[int, int]]) -> bytes:
        out = bytearray(valid)
        for position, value in edits:
            out[position % len(out)] = value
        return bytes(out)

    flips = st.lists(st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)), min_size=1, max_size=8).map(flip)
    cut = st.integers(0, len(valid)).map(lambda n: valid[:n])
    splice = st.tuples(st.integers(0, len(valid)), st.binary(max_size=64)).map(
        lambda t: valid[: t[0]] + t[1] + valid[t[0] :]
    )
    return st.one_of(flips, cut, splice)


def _ends_well(call, *args):
    try:
        return call(*args)
    except EdgeclfError:
        return None


# -- the manifest reader --------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
_KEYS = list(VALID.to_dict())


@FAST
@given(st.sampled_from(_KEYS), _json)
def test_manifest_with_any_field_replaced_loads_or_is_refused(tmp_path_factory, key, value):
    data = VALID.to_dict()
    data[key] = value
    folder = tmp_path_factory.mktemp("m")
    (folder / "manifest.json").write_text(json.dumps(data))
    result = _ends_well(Manifest.load, folder)
    assert result is None or isinstance(result, Manifest)


@FAST
@given(st.sampled_from(["input", "artifacts"]), st.one_of(st.just("open_set"), st.text(max_size=12)), _json)
def test_manifest_with_any_nested_field_replaced_loads_or_is_refused(tmp_path_factory, section, key, value):
    data = VALID.to_dict()
    if section == "input":
        data["input"][key or "height"] = value
    else:
        data["artifacts"][0][key or "file"] = value
    result = _ends_well(Manifest.from_dict, data)
    assert result is None or isinstance(result, Manifest)


@FAST
@given(st.one_of(st.sampled_from(RESIZE_MODES), _json))
def test_manifest_resize_mode_loads_only_when_known(value):
    data = VALID.to_dict()
    data["input"]["resize"] = value
    result = _ends_well(Manifest.from_dict, data)
    known = isinstance(value, str) and value in RESIZE_MODES
    assert (result is not None) == known
    assert result is None or result.input.resize == value


@FAST
@given(st.one_of(st.binary(max_size=300), _mutations(json.dumps(VALID.to_dict()).encode())))
def test_manifest_bytes_load_or_are_refused(tmp_path_factory, raw):
    folder = tmp_path_factory.mktemp("m")
    (folder / "manifest.json").write_bytes(raw)
    result = _ends_well(Manifest.load, folder)
    assert result is None or isinstance(result, Manifest)


# -- the embedded-metadata readers ----------------------------------------------------------------

_TFLITE = append_tflite_metadata(b"TFL3" + bytes(60), VALID.to_embedded())


def _onnx_with_metadata(value: bytes) -> bytes:
    def field(number: int, payload: bytes) -> bytes:
        return _varint(number << 3 | 2) + _varint(len(payload)) + payload

    entry = field(1, b"edgeclf") + field(2, value)
    return _varint(1 << 3) + _varint(8) + field(14, entry)  # ir_version = 8, then metadata_props


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


_ONNX = _onnx_with_metadata(json.dumps(VALID.to_embedded()).encode())


def test_the_valid_fixtures_read_back():
    assert read_tflite_payload(_TFLITE) == VALID.to_embedded()
    assert read_onnx_payload(_ONNX) == VALID.to_embedded()


@FAST
@given(st.one_of(st.binary(max_size=400), _mutations(_TFLITE)))
def test_tflite_trailing_zip_reads_or_is_refused(raw):
    payload = _ends_well(read_tflite_payload, raw)
    assert payload is None or isinstance(payload, dict)
    if payload is not None:
        _ends_well(Manifest.from_dict, payload)


@FAST
@given(st.one_of(st.binary(max_size=400), _mutations(_ONNX)))
def test_onnx_protobuf_walk_reads_or_is_refused(raw):
    payload = _ends_well(read_onnx_payload, raw)
    assert payload is None or isinstance(payload, dict)
    if payload is not None:
        _ends_well(Manifest.from_dict, payload)


def test_a_zip_bomb_in_a_tflite_is_refused_without_inflating_it():
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("edgeclf.json", b" " * 20_000_000)  # 20 MB of spaces deflate to ~20 kB
    with pytest.raises(EdgeclfError, match="too big"):
        read_tflite_payload(b"TFL3" + bytes(60) + buffer.getvalue())


# -- the image loader -----------------------------------------------------------------------------


def _encoded(fmt: str, mode: str = "RGB", **params) -> bytes:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (12, 10, len(mode)), dtype=np.uint8)
    image = Image.fromarray(array[..., 0] if mode == "L" else array, mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


_IMAGES = [
    _encoded("PNG"),
    _encoded("JPEG", quality=90),
    _encoded("GIF"),
    _encoded("BMP"),
    _encoded("TIFF"),
    _encoded("WEBP", lossless=True),
    _encoded("PNG", "RGBA"),
    _encoded("TIFF", "L", compression="tiff_lzw"),
]


@FAST
@given(st.one_of(st.binary(max_size=300), *[_mutations(valid) for valid in _IMAGES]))
def test_image_bytes_decode_or_are_refused(raw):
    result = _ends_well(preprocess, raw, SPEC)
    assert result is None or (result.shape == (16, 16, 3) and result.dtype == np.uint8)


@FAST
@given(st.integers(1, 300), st.integers(1, 300), st.integers(1, 40), st.integers(1, 40), st.sampled_from(RESIZE_MODES))
def test_every_resize_mode_gives_the_model_shape_for_any_image_and_model_size(width, height, model_w, model_h, mode):
    frame = np.full((height, width, 3), 200, np.uint8)
    out = preprocess(frame, InputSpec(model_h, model_w, resize=mode))
    assert out.shape == (model_h, model_w, 3) and out.dtype == np.uint8 and out.flags.c_contiguous


@FAST
@given(st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1))
def test_any_claimed_png_size_is_decoded_or_refused_without_allocating_it(width, height):
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    raw = b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    result = _ends_well(preprocess, raw, SPEC)
    assert result is None or result.shape == (16, 16, 3)
