"""Record self-check probes in each exported file (see :mod:`edge_runtime.probes`).

The staged file's own interpreter gives the reference outputs; for ``.tflite`` files the
tflite-runtime 2.14 Python given to the export adds its own reference too, because the two
runtimes' int8 kernels round differently (65% of int8 outputs differ by up to 0.059 on the same
file), so each runtime is checked against what *it* computed at export.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from edge_runtime.embedded import EMBEDDED_KEY, append_tflite_metadata, read_tflite_payload
from edge_runtime.probes import PROBES_KEY

# Runs inside the tflite-runtime Python: the recorded inputs through that runtime, raw outputs as JSON.
_REFERENCE_SCRIPT = """
import json, sys
from edge_runtime.classifier import Classifier
from edge_runtime.probes import decode_array, encode_array, raw_outputs
probes = json.loads(open(sys.argv[2]).read())
with Classifier.from_file(sys.argv[1], backend="tflite-runtime") as clf:
    print(json.dumps(encode_array(raw_outputs(clf, decode_array(probes["inputs"])))))
"""


def tflite_runtime_reference(path: Path, python: Path, probes: dict[str, Any], work_dir: Path) -> dict[str, Any] | None:
    """tflite-runtime's raw outputs for the probes, or ``None`` when it cannot run the file."""
    from edge_runtime.child import child_env

    probe_file = work_dir / f"{path.stem}.probes.json"
    probe_file.write_text(json.dumps(probes))
    try:
        done = subprocess.run(
            [str(python), "-c", _REFERENCE_SCRIPT, str(path), str(probe_file)],
            capture_output=True,
            text=True,
            timeout=300,
            env=child_env(),
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None  # the compatibility verdict records why
    return json.loads(done.stdout.strip().splitlines()[-1])


def embed_probes(path: Path, probes: dict[str, Any]) -> None:
    """Rewrite the staged file ``path`` with ``probes`` added to its embedded metadata."""
    data = path.read_bytes()
    if path.suffix == ".tflite":
        payload = read_tflite_payload(data) or {}
        path.write_bytes(append_tflite_metadata(data, {**payload, PROBES_KEY: probes}))
        return
    import onnx

    proto = onnx.ModelProto()
    proto.ParseFromString(data)
    for entry in proto.metadata_props:
        if entry.key == EMBEDDED_KEY:
            entry.value = json.dumps({**json.loads(entry.value), PROBES_KEY: probes}, sort_keys=True)
    path.write_bytes(proto.SerializeToString())


def record_probes(classifier: Any, staged: Path, images: Any, precision: str, ctx: Any) -> dict[str, Any]:
    """Make the probes of one staged file, embed them in it, and return them (for the manifest)."""
    from edge_runtime.probes import make_probes

    probes = make_probes(classifier, images, precision)
    if staged.suffix == ".tflite" and ctx.tflite_runtime_python is not None:
        other = tflite_runtime_reference(staged, ctx.tflite_runtime_python, probes, ctx.work_dir)
        if other is not None:
            probes["outputs"]["tflite-runtime"] = other
    return probes
