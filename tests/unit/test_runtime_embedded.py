"""Metadata embedded in model files: an appended ZIP for TFLite, a metadata_props entry for ONNX."""

import io
import json
import struct
import zipfile

import pytest

from edgeclf.runtime.embedded import (
    EMBEDDED_FILE,
    EMBEDDED_KEY,
    append_tflite_metadata,
    onnx_metadata,
    read_embedded_manifest,
    read_onnx_payload,
    read_tflite_payload,
)
from edgeclf.runtime.errors import ManifestError
from edgeclf.runtime.manifest import InputSpec, Manifest

MANIFEST = Manifest(
    labels=("cars", "elephants"), input=InputSpec(32, 40), output_activation="sigmoid", preset="default"
)
FLATBUFFER = b"\x1c\x00\x00\x00TFL3" + bytes(range(256)) * 4  # stands in for a .tflite file's bytes


def test_tflite_payload_round_trips_and_keeps_the_model_bytes_first(tmp_path):
    data = append_tflite_metadata(FLATBUFFER, MANIFEST.to_embedded())
    assert data.startswith(FLATBUFFER)
    assert read_tflite_payload(data) == MANIFEST.to_embedded()
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    assert read_embedded_manifest(path) == MANIFEST


def test_embedding_twice_replaces_instead_of_stacking():
    once = append_tflite_metadata(FLATBUFFER, {"x": 1})
    twice = append_tflite_metadata(once, MANIFEST.to_embedded())
    assert twice.startswith(FLATBUFFER)
    assert twice == append_tflite_metadata(FLATBUFFER, MANIFEST.to_embedded())
    assert read_tflite_payload(twice) == MANIFEST.to_embedded()


def test_labels_file_and_payload_share_one_archive_each_reader_finds_its_own():
    data = append_tflite_metadata(FLATBUFFER, MANIFEST.to_embedded(), {"labels.txt": b"elephants\n"})
    assert data.startswith(FLATBUFFER)
    assert read_tflite_payload(data) == MANIFEST.to_embedded()  # edgeclf's reader
    # The standard metadata's reader (MediaPipe, the Task Library) looks up its associated file by name
    # in the ZIP at the end of the file; members are stored, not deflated, so they can be read in place.
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.read("labels.txt") == b"elephants\n"
        infos = archive.infolist()
    assert sorted(i.filename for i in infos) == [EMBEDDED_FILE, "labels.txt"]
    assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}
    # The central directory's stored offset counts from the file's first byte, as TFLite's own populator
    # writes it (zipfile itself would hide a relative one).
    end = data.rfind(b"PK\x05\x06")
    directory = struct.unpack("<I", data[end + 16 : end + 20])[0]
    assert directory > len(FLATBUFFER) and data[directory : directory + 4] == b"PK\x01\x02"
    payload = json.dumps(MANIFEST.to_embedded(), sort_keys=True).encode()
    for info in infos:
        assert data[info.header_offset : info.header_offset + 4] == b"PK\x03\x04"
        start = info.header_offset + 30 + len(info.filename)
        assert data[start : start + info.file_size] == (b"elephants\n" if info.filename == "labels.txt" else payload)


def test_re_embedding_the_payload_keeps_the_labels_file():
    once = append_tflite_metadata(FLATBUFFER, {"x": 1}, {"labels.txt": b"a\nb\n"})
    twice = append_tflite_metadata(once, MANIFEST.to_embedded())  # as the exporter adds its probes
    assert twice == append_tflite_metadata(FLATBUFFER, MANIFEST.to_embedded(), {"labels.txt": b"a\nb\n"})
    with zipfile.ZipFile(io.BytesIO(twice)) as archive:
        assert archive.read("labels.txt") == b"a\nb\n"
    assert read_tflite_payload(twice) == MANIFEST.to_embedded()


def test_file_without_metadata_reads_as_none(tmp_path):
    assert read_tflite_payload(FLATBUFFER) is None
    path = tmp_path / "plain.tflite"
    path.write_bytes(FLATBUFFER)
    assert read_embedded_manifest(path) is None


def test_foreign_zip_is_not_mistaken_for_ours(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("labels.txt", "a\nb\n")
    assert read_tflite_payload(FLATBUFFER + path.read_bytes()) is None


def test_broken_payload_is_a_manifest_error(tmp_path):
    path = tmp_path / "bad.tflite"
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(EMBEDDED_FILE, "{not json")
    path.write_bytes(FLATBUFFER + buffer.getvalue())
    with pytest.raises(ManifestError, match="not valid JSON"):
        read_embedded_manifest(path)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _onnx_bytes(props: dict[str, str]) -> bytes:
    """A ModelProto with ir_version (varint), a graph-like blob and metadata_props, by the wire format."""
    body = _varint(1 << 3 | 0) + _varint(9)  # ir_version = 9
    body += _field(7, b"\x0a\x03abc" * 50)  # graph: skipped by length, whatever is inside
    for key, value in props.items():
        body += _field(14, _field(1, key.encode()) + _field(2, value.encode()))
    return body


def test_onnx_metadata_props_are_read_from_the_wire_format():
    payload = json.dumps(MANIFEST.to_embedded())
    data = _onnx_bytes({"producer": "x", EMBEDDED_KEY: payload})
    assert onnx_metadata(data) == {"producer": "x", EMBEDDED_KEY: payload}
    assert read_onnx_payload(data) == MANIFEST.to_embedded()
    assert read_onnx_payload(_onnx_bytes({"producer": "x"})) is None
    assert read_onnx_payload(b"\xff\xff\xff") is None  # not a protobuf: no metadata, no crash


def test_onnx_reader_agrees_with_the_onnx_package(tmp_path):
    onnx = pytest.importorskip("onnx", reason="the onnx package (train extra) writes the reference file")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph)
    helper.set_model_props(model, {EMBEDDED_KEY: json.dumps(MANIFEST.to_embedded()), "other": "1"})
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    assert read_embedded_manifest(path) == MANIFEST
