"""Self-check of a deployed model: probe inputs recorded at export, re-run by the installed interpreter.

At export a few validated images (the exact uint8 tensors the model saw) and the file's raw
outputs for them are stored in the file's embedded metadata (key ``probes``) and in its manifest
entry (``details.probes``). :func:`verify_model` runs the same tensors through the interpreter
installed *now* and compares: integer (int8/uint8) outputs must be identical, float outputs must
stay within the recorded tolerance. This catches an interpreter broken by a system or pip upgrade,
and a model file changed after export even when someone updated its sha256.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeclf.runtime.classifier import Classifier, ClassifierOptions
from edgeclf.runtime.embedded import read_embedded_payload
from edgeclf.runtime.errors import SelfCheckError

PROBES_KEY = "probes"
PROBES_VERSION = 1
DEFAULT_PROBES = 3

# Allowed |difference| of float outputs, by artifact precision. Measured: the same file in the same
# runtime differed by at most 4.8e-7 (fp32/fp16) and 1.8e-3 (dynamic range, ai-edge-litert on an
# emulated Cortex-A76) between x86-64 and Arm; the bounds leave room above those.
FLOAT_TOLERANCE = {"fp32": 1e-5, "fp16": 1e-5, "dynamic": 5e-3}
DEFAULT_FLOAT_TOLERANCE = 1e-5


def encode_array(array: np.ndarray) -> dict[str, Any]:
    """A JSON-ready, lossless form of an array (dtype, shape, zlib-compressed bytes in base64)."""
    array = np.ascontiguousarray(array)
    packed = base64.b64encode(zlib.compress(array.tobytes(), 9)).decode("ascii")
    return {"dtype": str(array.dtype), "shape": list(array.shape), "zlib_base64": packed}


def decode_array(data: Mapping[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_array`; :class:`SelfCheckError` for a damaged entry."""
    try:
        raw = zlib.decompress(base64.b64decode(data["zlib_base64"]))
        return np.frombuffer(raw, dtype=np.dtype(data["dtype"])).reshape(tuple(data["shape"])).copy()
    except (KeyError, TypeError, ValueError, zlib.error) as error:
        raise SelfCheckError(f"probe data is damaged ({error}); re-run `edgeclf export`") from None


def raw_outputs(classifier: Classifier, images: np.ndarray) -> np.ndarray:
    """The interpreter's raw output tensor for each uint8 image, one at a time (batch-1 models)."""
    return np.concatenate([np.asarray(classifier.session.run(classifier.prepare(image))) for image in images])


def make_probes(
    classifier: Classifier, images: np.ndarray, precision: str | None = None, *, extra_backends: Sequence[str] = ()
) -> dict[str, Any]:
    """The ``probes`` entry for ``images`` (uint8 ``(N, H, W, 3)``), with this classifier's outputs as reference."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    outputs = raw_outputs(classifier, images)
    return {
        "version": PROBES_VERSION,
        "inputs": encode_array(images),
        "outputs": {classifier.backend_name: encode_array(outputs)},
        "float_tolerance": FLOAT_TOLERANCE.get(precision or "", DEFAULT_FLOAT_TOLERANCE),
    }


def pick_probe_indices(labels: np.ndarray, agree: np.ndarray, count: int) -> list[int]:
    """Ascending indices of up to ``count`` validation images the file classified like Keras, labels in turn."""
    chosen: list[int] = []
    pools = [list(np.flatnonzero((labels == label) & agree)) for label in np.unique(labels)]
    while len(chosen) < count and any(pools):
        for pool in pools:
            if pool and len(chosen) < count:
                chosen.append(int(pool.pop(0)))
    return sorted(chosen)


def pick_probe_images(images: np.ndarray, labels: np.ndarray, agree: np.ndarray, count: int) -> np.ndarray:
    """The images :func:`pick_probe_indices` picks."""
    return images[pick_probe_indices(labels, agree, count)]


@dataclass(frozen=True)
class ProbeReport:
    """The outcome of :func:`verify_model`."""

    path: str
    format: str
    backend: str
    probes: int
    integer: bool
    max_abs_diff: float
    tolerance: float
    mismatched: int

    @property
    def ok(self) -> bool:
        """True when every probe reproduced its reference."""
        return self.mismatched == 0

    def line(self) -> str:
        """One human-readable line."""
        rule = "identical" if self.integer else f"within {self.tolerance:g}"
        verdict = "ok" if self.ok else f"FAILED: {self.mismatched} of {self.probes} probes differ"
        return (
            f"{self.path} ({self.format}, {self.backend}): {verdict}; {self.probes} probes, "
            f"outputs must be {rule}, max |difference| {self.max_abs_diff:.3g}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**self.__dict__, "ok": self.ok}


def load_probes(classifier: Classifier) -> dict[str, Any]:
    """The probes of the loaded file: its embedded metadata first (they travel with it), else its manifest entry."""
    payload = read_embedded_payload(classifier.path) or {}
    probes = payload.get(PROBES_KEY)
    if probes is None and classifier.artifact is not None:
        probes = classifier.artifact.details.get(PROBES_KEY)
    if not isinstance(probes, Mapping):
        raise SelfCheckError(
            f"{classifier.path}: carries no probe inputs to check it with (exported by an older edgeclf); "
            "re-run `edgeclf export`"
        )
    return dict(probes)


def check_probes(classifier: Classifier, probes: Mapping[str, Any], tolerance: float | None = None) -> ProbeReport:
    """Run the probes through ``classifier`` and compare with the reference of its backend."""
    backend = classifier.backend_name
    references = probes.get("outputs") or {}
    if backend not in references:
        known = ", ".join(sorted(references)) or "none"
        raise SelfCheckError(
            f"{classifier.path}: no reference outputs for {backend} (recorded for: {known}); run with "
            f"--backend {sorted(references)[0] if references else 'litert'} or re-export with that runtime available"
        )
    inputs = decode_array(probes["inputs"])
    expected = decode_array(references[backend])
    actual = raw_outputs(classifier, inputs)
    if actual.shape != expected.shape or actual.dtype != expected.dtype:
        raise SelfCheckError(
            f"{classifier.path}: outputs are {actual.dtype} {list(actual.shape)}, the probes recorded "
            f"{expected.dtype} {list(expected.shape)}; the file or the interpreter changed"
        )
    integer = expected.dtype.kind in "iu"
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64)).reshape(len(inputs), -1)
    bound = 0.0 if integer else float(tolerance if tolerance is not None else probes.get("float_tolerance", 1e-5))
    mismatched = int(np.sum(~(diff.max(axis=1) <= bound)))  # NaN (a broken kernel) counts as a mismatch
    return ProbeReport(
        path=str(classifier.path),
        format=classifier.format,
        backend=backend,
        probes=len(inputs),
        integer=integer,
        max_abs_diff=float(diff.max(initial=0.0)),
        tolerance=bound,
        mismatched=mismatched,
    )


def verify_model(
    model_or_run: str | Path, options: ClassifierOptions | None = None, tolerance: float | None = None
) -> ProbeReport:
    """Load a model (checking it against its manifest as usual) and re-run its export-time probes.

    Raises:
        SelfCheckError: the file carries no probes, or none for the installed backend.
        ManifestError, ModelLoadError, BackendUnavailableError: as :meth:`Classifier.open`.
    """
    with Classifier.open(model_or_run, options) as classifier:
        return check_probes(classifier, load_probes(classifier), tolerance)
