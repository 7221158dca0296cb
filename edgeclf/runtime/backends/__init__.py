"""Interpreter backends, by name. Each imports its package only when a model is loaded.

>>> from edgeclf.runtime.backends import get_backend
>>> session = get_backend("litert").load("model_tflite-int8.tflite", threads=None)  # doctest: +SKIP
>>> raw = session.run(batch)                                                          # doctest: +SKIP

``"litert"`` (ai-edge-litert) is preferred for ``.tflite``; ``"tflite-runtime"`` is what older Pis
have; ``"onnxruntime"`` runs ``.onnx``. A missing package raises
:class:`~edgeclf.runtime.errors.BackendUnavailableError` naming what to install.
"""

from __future__ import annotations

from pathlib import Path

from edgeclf.runtime.backends.base import Backend, Session, default_threads
from edgeclf.runtime.backends.litert import BACKEND as _LITERT
from edgeclf.runtime.backends.onnxruntime import BACKEND as _ONNXRUNTIME
from edgeclf.runtime.backends.tflite_runtime import BACKEND as _TFLITE_RUNTIME
from edgeclf.runtime.errors import BackendUnavailableError, EdgeclfError
from edgeclf.runtime.registry import Registry

# Registration order is preference order for a suffix: litert before tflite-runtime.
BACKENDS: Registry[Backend] = Registry("backend")
for _backend in (_LITERT, _TFLITE_RUNTIME, _ONNXRUNTIME):
    BACKENDS.register(_backend.name, _backend)

__all__ = ["BACKENDS", "Backend", "Session", "backend_for", "default_threads", "get_backend"]


def get_backend(name: str) -> Backend:
    """Return the backend registered as ``name``.

    Raises:
        UnknownNameError: unknown name (the message lists the known ones).
    """
    return BACKENDS.get(name)


def backend_for(path: str | Path, preferred: str | None = None) -> Backend:
    """Choose the backend that runs ``path``: ``preferred`` when installed, else the first installed one.

    ``preferred`` is typically the manifest's ``Artifact.backend``: a ``.tflite`` exported for
    ``litert`` still runs on a Pi that has only ``tflite-runtime``.

    Raises:
        EdgeclfError: no backend loads this suffix.
        BackendUnavailableError: none of the backends for this suffix is installed.
    """
    suffix = Path(path).suffix.lower()
    candidates = [b for b in BACKENDS.values() if suffix in b.suffixes]
    if not candidates:
        known = sorted({s for b in BACKENDS.values() for s in b.suffixes})
        raise EdgeclfError(f"{path}: no backend runs {suffix or 'files without a suffix'}; known: {', '.join(known)}")
    if preferred in BACKENDS and BACKENDS[preferred] in candidates:
        candidates.sort(key=lambda b: b.name != preferred)
    for backend in candidates:
        if backend.available():
            return backend
    names = " or ".join(b.module.split(".")[0] for b in candidates)
    install = "; or ".join(b.install for b in candidates)
    raise BackendUnavailableError(f"no interpreter for {suffix} files ({names})", install)
