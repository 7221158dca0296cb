"""Metadata embedded in each exported file, so one copied model file is enough to label outputs.

The payload is :meth:`Manifest.to_embedded` (labels, input spec, output activation, preset) as
JSON, stored under the key :data:`EMBEDDED_KEY`:

- **TFLite**: a ZIP archive holding ``edgeclf.json`` appended to the end of the ``.tflite`` file.
  Flatbuffer loaders ignore trailing bytes (TFLite's own metadata tooling packs associated files
  the same way); verified with ai-edge-litert 2.3 and tflite-runtime 2.14. The same archive holds
  ``labels.txt``, the associated file of the standard TFLite metadata the exporter also writes
  (``edgeclf/exporter/tflite_metadata.py``), so MediaPipe Tasks and the TFLite Task Library find their
  labels and edgeclf finds its payload in one archive.
- **ONNX**: an entry of the model's ``metadata_props`` with key ``edgeclf`` (written by the
  exporter with the ``onnx`` package). It is read here by walking the protobuf's top-level fields,
  so the runtime needs neither ``onnx`` nor an inference session to read it.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from edgeclf.runtime.errors import ManifestError
from edgeclf.runtime.manifest import Manifest, parse_json

EMBEDDED_KEY = "edgeclf"
EMBEDDED_FILE = f"{EMBEDDED_KEY}.json"

# ModelProto.metadata_props is field 14 (repeated StringStringEntryProto {key = 1; value = 2}).
_ONNX_METADATA_FIELD = 14


def append_tflite_metadata(data: bytes, payload: Mapping[str, Any], files: Mapping[str, bytes] | None = None) -> bytes:
    """Return ``data`` (a ``.tflite`` flatbuffer) with ``payload`` appended as a ZIP of ``edgeclf.json``.

    ``files`` (the labels file the standard TFLite metadata names) go into the same archive, which
    is how TFLite stores a model's associated files. An earlier edgeclf archive at the end of
    ``data`` is replaced, keeping its other files unless ``files`` replaces them, so embedding
    twice is harmless. Members are stored uncompressed with offsets from the start of the file, as
    TFLite's own metadata populator writes them (MediaPipe reads associated files in place).
    """
    kept = _archived_files(bytes(data))
    data = strip_tflite_metadata(bytes(data))
    members = {**kept, **(files or {}), EMBEDDED_FILE: json.dumps(dict(payload), sort_keys=True).encode("utf-8")}
    buffer = io.BytesIO()
    buffer.write(data)  # zipfile then records offsets counted from the flatbuffer's first byte
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # fixed: reproducible bytes
            archive.writestr(info, members[name])
    return buffer.getvalue()


# What a malformed archive can raise from zipfile: bad headers, offsets before the start, unknown
# compression methods, encrypted entries, corrupt deflate streams.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    ValueError,
    EOFError,
    NotImplementedError,
    RuntimeError,
    KeyError,
    IndexError,
    struct.error,
    zlib.error,
)

# A real payload is about 1 kB; more than this is refused without inflating it (a ZIP bomb).
MAX_PAYLOAD_BYTES = 1 << 20


def _open_archive(data: bytes) -> zipfile.ZipFile | None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        if EMBEDDED_FILE in archive.namelist():
            return archive
    except _ZIP_ERRORS:
        return None
    archive.close()
    return None


def strip_tflite_metadata(data: bytes) -> bytes:
    """``data`` without the archive this module appends (the bare model bytes); unchanged when there is none."""
    archive = _open_archive(data)
    if archive is None:
        return data
    with archive:
        # zipfile makes header offsets absolute (it accounts for bytes before the archive).
        start = min(info.header_offset for info in archive.infolist())
    return data[: max(0, start)]


def _archived_files(data: bytes) -> dict[str, bytes]:
    """The files other than ``edgeclf.json`` in the edgeclf archive at the end of ``data`` (none if unreadable)."""
    archive = _open_archive(data)
    if archive is None:
        return {}
    with archive:
        try:
            return {
                info.filename: archive.read(info)
                for info in archive.infolist()
                if info.filename != EMBEDDED_FILE and info.file_size <= MAX_PAYLOAD_BYTES
            }
        except _ZIP_ERRORS:
            return {}


def read_tflite_payload(data: bytes) -> dict[str, Any] | None:
    """The embedded JSON payload of a ``.tflite`` file's bytes, or ``None`` when there is none."""
    archive = _open_archive(data)
    if archive is None:
        return None
    with archive:
        try:
            if archive.getinfo(EMBEDDED_FILE).file_size > MAX_PAYLOAD_BYTES:
                raise ManifestError(f"embedded {EMBEDDED_KEY} metadata is too big (a real one is about 1 kB)")
            with archive.open(EMBEDDED_FILE) as member:
                raw = member.read(MAX_PAYLOAD_BYTES + 1)  # the header's size may lie: read at most this
        except _ZIP_ERRORS as error:
            problem = f"{type(error).__name__}: {error}"
            raise ManifestError(f"embedded {EMBEDDED_KEY} metadata is unreadable ({problem})") from None
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise ManifestError(f"embedded {EMBEDDED_KEY} metadata is too big (a real one is about 1 kB)")
    return _decode(raw)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(data: bytes) -> Iterator[tuple[int, int, bytes | int]]:
    """Yield ``(field_number, wire_type, value)`` of one protobuf message's top level."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, wire, value
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated length-delimited field")
            yield number, wire, data[pos : pos + length]
            pos += length
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")


def onnx_metadata(data: bytes) -> dict[str, str]:
    """All ``metadata_props`` of a serialised ONNX ``ModelProto`` as a dict.

    Raises:
        ValueError: the bytes are not a protobuf message.
    """
    props: dict[str, str] = {}
    for number, wire, value in _fields(data):
        if number == _ONNX_METADATA_FIELD and wire == 2:
            entry = {n: v for n, w, v in _fields(value) if w == 2}  # type: ignore[arg-type]
            key = bytes(entry.get(1, b"")).decode("utf-8", "replace")
            props[key] = bytes(entry.get(2, b"")).decode("utf-8", "replace")
    return props


def read_onnx_payload(data: bytes) -> dict[str, Any] | None:
    """The embedded JSON payload of an ``.onnx`` file's bytes, or ``None`` when there is none."""
    try:
        props = onnx_metadata(data)
    except ValueError:
        return None
    raw = props.get(EMBEDDED_KEY)
    return None if raw is None else _decode(raw.encode("utf-8"))


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        payload = parse_json(raw)
    except ValueError as error:
        raise ManifestError(f"embedded {EMBEDDED_KEY} metadata is not valid JSON ({error})") from None
    if not isinstance(payload, dict):
        raise ManifestError(f"embedded {EMBEDDED_KEY} metadata should be a JSON object")
    return payload


def read_embedded_payload(path: str | Path) -> dict[str, Any] | None:
    """The embedded payload of a ``.tflite`` or ``.onnx`` file, or ``None`` when it carries none."""
    path = Path(path)
    data = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return read_onnx_payload(data)
    if suffix == ".tflite":
        return read_tflite_payload(data)
    return None


def read_embedded_manifest(path: str | Path) -> Manifest | None:
    """The :class:`Manifest` embedded in a model file, or ``None`` when the file carries none.

    Raises:
        ManifestError: the file carries metadata that is not a valid manifest.
    """
    payload = read_embedded_payload(path)
    if payload is None:
        return None
    return Manifest.from_dict(payload, source=f"{path} (embedded metadata)")
