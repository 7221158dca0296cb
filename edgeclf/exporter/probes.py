"""Record self-check probes in each exported file (see :mod:`edgeclf.runtime.probes`).

The staged file's own interpreter gives the reference outputs; for ``.tflite`` files validated in
tflite-runtime 2.14 too, that runtime's outputs are added, because the two runtimes' int8 kernels
round differently (65% of int8 outputs differ by up to 0.059 on the same file), so each runtime is
checked against what *it* computed at export. Those come from the validation run in that runtime
(:attr:`edgeclf.exporter.formats.Inspection.raw_outputs`): the probe images are validation images, so they
are not run through the same interpreter again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgeclf.runtime.embedded import EMBEDDED_KEY, append_tflite_metadata, read_tflite_payload
from edgeclf.runtime.probes import PROBES_KEY, encode_array


def embed_probes(path: Path, probes: dict[str, Any]) -> None:
    """Rewrite the staged file ``path`` with ``probes`` added to its embedded metadata."""
    embed_entries(path, {PROBES_KEY: probes})


def embed_entries(path: Path, entries: dict[str, Any]) -> None:
    """Rewrite the staged file ``path`` with ``entries`` added to (or replacing keys of) its embedded metadata."""
    data = path.read_bytes()
    if path.suffix == ".tflite":
        payload = read_tflite_payload(data) or {}
        path.write_bytes(append_tflite_metadata(data, {**payload, **entries}))
        return
    import onnx

    proto = onnx.ModelProto()
    proto.ParseFromString(data)
    for entry in proto.metadata_props:
        if entry.key == EMBEDDED_KEY:
            entry.value = json.dumps({**json.loads(entry.value), **entries}, sort_keys=True)
    path.write_bytes(proto.SerializeToString())


def record_probes(
    classifier: Any, images: np.ndarray, precision: str, others: Mapping[str, np.ndarray] | None = None
) -> dict[str, Any]:
    """The probes of one staged file: ``classifier``'s outputs on ``images``, plus ``others`` (raw outputs
    of the same images in other runtimes, by backend name)."""
    from edgeclf.runtime.probes import make_probes

    probes = make_probes(classifier, images, precision)
    for backend, outputs in (others or {}).items():
        probes["outputs"][backend] = encode_array(np.ascontiguousarray(outputs))
    return probes
