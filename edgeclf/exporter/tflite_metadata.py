"""Standard TFLite metadata for image classifiers, as MediaPipe Tasks and the TFLite Task Library read it.

The standard metadata is a second flatbuffer (TFLite's ``metadata_schema.fbs``, identifier
``M001``: a ``ModelMetadata`` with one ``SubGraphMetadata`` describing the input image and the
output scores) stored as one of the model's buffers and named ``TFLITE_METADATA`` in the model's
``metadata`` list; the files it names (here ``labels.txt``, one label a line in output order) are
packed in a ZIP appended to the model. edgeclf's own payload goes into that same ZIP
(:func:`edgeclf.runtime.embedded.append_tflite_metadata`).

The metadata flatbuffer is built here with the ``flatbuffers`` package, field by field in the
schema's order; the model is re-packed with the TFLite schema module TensorFlow ships. MediaPipe's
own writer needs a compiled module its 1.2.2 wheel lacks (``mediapipe.tasks.cc``), so a real
MediaPipe ``ImageClassifier`` loading the exported files is the test of this module
(``tests/integration/test_mediapipe_reads_tflite.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flatbuffers
import numpy as np

from edgeclf.runtime.manifest import LABELS_NAME, Manifest

METADATA_NAME = "TFLITE_METADATA"  # the model's metadata entry MediaPipe and the Task Library look up
METADATA_IDENTIFIER = b"M001"
MODEL_IDENTIFIER = b"TFL3"
# Every field written below exists since schema 1.0.0, the oldest parser version.
MIN_PARSER_VERSION = "1.0.0"

# Enum and union values of metadata_schema.fbs.
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType
_RGB = 1  # ColorSpaceType
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2  # ContentProperties
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions


def _strings(b: flatbuffers.Builder, values: dict[str, str | None]) -> dict[str, int]:
    return {key: b.CreateString(value) for key, value in values.items() if value is not None}


def _offsets(b: flatbuffers.Builder, offsets: Sequence[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        b.PrependUOffsetTRelative(offset)
    return b.EndVector()


def _floats(b: flatbuffers.Builder, values: Sequence[float]) -> int:
    b.StartVector(4, len(values), 4)
    for value in reversed(values):
        b.PrependFloat32(value)
    return b.EndVector()


def _table(b: flatbuffers.Builder, slots: int, offsets: dict[int, int], bytes_: dict[int, int] | None = None) -> int:
    """A table of ``slots`` fields: ``offsets`` maps field index → offset, ``bytes_`` → uint8/enum value."""
    b.StartObject(slots)
    for slot, offset in offsets.items():
        b.PrependUOffsetTRelativeSlot(slot, offset, 0)
    for slot, value in (bytes_ or {}).items():
        b.PrependUint8Slot(slot, value, 0)
    return b.EndObject()


def _stats(b: flatbuffers.Builder, low: float, high: float) -> int:
    # Stats { max:[float]; min:[float]; }
    return _table(b, 2, {0: _floats(b, [high]), 1: _floats(b, [low])})


def _tensor(
    b: flatbuffers.Builder,
    name: str,
    description: str,
    content: int,
    stats: int,
    process_units: Sequence[int] = (),
    files: Sequence[int] = (),
) -> int:
    # TensorMetadata { name; description; dimension_names; content; process_units; stats; associated_files; }
    s = _strings(b, {"name": name, "description": description})
    fields = {0: s["name"], 1: s["description"], 3: content, 5: stats}
    if process_units:
        fields[4] = _offsets(b, process_units)
    if files:
        fields[6] = _offsets(b, files)
    return _table(b, 7, fields)


def _input_tensor(b: flatbuffers.Builder, manifest: Manifest) -> int:
    spec = manifest.input
    # ImageProperties { color_space; default_size; } inside Content { content_properties (union); range; }
    image = _table(b, 2, {}, {0: _RGB})
    content = _table(b, 3, {1: image}, {0: _IMAGE_PROPERTIES})
    # The model takes 0-255 RGB and rescales inside its graph: the identity (mean 0, std 1) tells a
    # float-input reader to feed raw pixel values; uint8 inputs are fed as they are.
    normalization = _table(b, 2, {0: _floats(b, [0.0]), 1: _floats(b, [1.0])})
    unit = _table(b, 2, {1: normalization}, {0: _NORMALIZATION_OPTIONS})
    description = (
        f"RGB image, {spec.height}x{spec.width} pixels, values 0-255 (resize with a {spec.resize_filter} filter; "
        "rescaling happens inside the model)"
    )
    return _tensor(b, "image", description, content, _stats(b, 0.0, 255.0), process_units=[unit])


def _output_tensor(b: flatbuffers.Builder, manifest: Manifest) -> int:
    if manifest.output_activation == "sigmoid":
        # One sigmoid output: the probability of the second label (the first is 1 minus it).
        description = f"Probability of '{manifest.labels[1]}' (one sigmoid output; '{manifest.labels[0]}' is 1 - it)"
    else:
        description = (
            f"Probabilities of the {len(manifest.labels)} labels in {LABELS_NAME} ({manifest.output_activation})"
        )
    s = _strings(b, {"name": LABELS_NAME, "description": "Labels of the output scores, one a line"})
    labels_file = _table(b, 5, {0: s["name"], 1: s["description"]}, {2: _TENSOR_AXIS_LABELS})
    content = _table(b, 3, {1: _table(b, 0, {})}, {0: _FEATURE_PROPERTIES})
    return _tensor(b, "probability", description, content, _stats(b, 0.0, 1.0), files=[labels_file])


def labels_file(manifest: Manifest) -> bytes:
    """The ``labels.txt`` the output tensor's metadata names: one label a line, one line per output.

    A two-label sigmoid model has one output, the second label's probability, so its file holds
    that label alone (MediaPipe reports one category: that label with that probability).
    """
    labels = manifest.labels[1:] if manifest.output_activation == "sigmoid" else manifest.labels
    return "".join(f"{label}\n" for label in labels).encode("utf-8")


def metadata_flatbuffer(manifest: Manifest) -> bytes:
    """The ``ModelMetadata`` flatbuffer (identifier ``M001``) of an image classifier with ``manifest``'s labels."""
    b = flatbuffers.Builder(1024)
    inputs = _offsets(b, [_input_tensor(b, manifest)])
    outputs = _offsets(b, [_output_tensor(b, manifest)])
    s = _strings(b, {"name": "image classifier"})
    # SubGraphMetadata { name; description; input_tensor_metadata; output_tensor_metadata; ... }
    subgraph = _table(b, 10, {0: s["name"], 2: inputs, 3: outputs})
    preset = f" ({manifest.preset} preset)" if manifest.preset else ""
    s = _strings(
        b,
        {
            "name": "edgeclf image classifier",
            "description": f"Classifies an RGB image as one of: {', '.join(manifest.labels)}{preset}.",
            "author": "edgeclf",
            "min_parser_version": MIN_PARSER_VERSION,
        },
    )
    subgraphs = _offsets(b, [subgraph])
    # ModelMetadata { name; description; version; subgraph_metadata; author; license; associated_files;
    #                 min_parser_version; }
    root = _table(b, 8, {0: s["name"], 1: s["description"], 3: subgraphs, 4: s["author"], 7: s["min_parser_version"]})
    b.Finish(root, file_identifier=METADATA_IDENTIFIER)
    return bytes(b.Output())


def _schema() -> Any:
    # TensorFlow ships the generated flatbuffer code of the TFLite model schema (with its object API).
    from tensorflow.lite.python import schema_py_generated

    return schema_py_generated


def with_metadata_buffer(data: bytes, metadata: bytes) -> bytes:
    """``data`` (a ``.tflite`` flatbuffer, nothing appended) with ``metadata`` stored as ``TFLITE_METADATA``.

    An existing ``TFLITE_METADATA`` entry is replaced; the model's other metadata entries stay.
    """
    schema = _schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata, dtype=np.uint8)
    model.buffers = list(model.buffers or [])
    model.metadata = list(model.metadata or [])
    for entry in model.metadata:
        if _name(entry.name) == METADATA_NAME:
            model.buffers[entry.buffer] = buffer
            break
    else:
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = METADATA_NAME
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)
    b = flatbuffers.Builder(len(data) + len(metadata) + 1024)
    b.Finish(model.Pack(b), file_identifier=MODEL_IDENTIFIER)
    return bytes(b.Output())


def _name(value: str | bytes | None) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else (value or "")


def add_standard_metadata(data: bytes, manifest: Manifest) -> tuple[bytes, dict[str, bytes]]:
    """``data`` with the standard metadata buffer, and the associated files to append (``labels.txt``)."""
    return with_metadata_buffer(data, metadata_flatbuffer(manifest)), {LABELS_NAME: labels_file(manifest)}


def read_metadata_buffer(data: bytes) -> bytes | None:
    """The ``TFLITE_METADATA`` buffer of a ``.tflite`` file's bytes, or ``None`` when it has none."""
    schema = _schema()
    model = schema.Model.GetRootAsModel(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if _name(entry.Name()) == METADATA_NAME:
            return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    return None
