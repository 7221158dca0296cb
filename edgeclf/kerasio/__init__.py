"""The run's Keras model as a file: import TensorFlow (or name the extra), load, save atomically.

Shared by the trainer, the exporter and the benchmarks' reference row, which must not import one
another's code. Nothing here is imported by ``edgeclf.runtime`` (the runtime never loads Keras), and
TensorFlow itself is imported only inside the functions that need it.
"""

from __future__ import annotations

import importlib.util
import os
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

from edgeclf.runtime.errors import ManifestError, first_line, missing_extra
from edgeclf.runtime.fileio import atomic_path
from edgeclf.runtime.manifest import Manifest, run_file

__all__ = [
    "check_model",
    "import_keras",
    "import_tensorflow",
    "load_run_model",
    "require_tensorflow",
    "save_model",
    "tensorflow_installed",
]


def tensorflow_installed() -> bool:
    """True when TensorFlow is importable (checked without importing it)."""
    return importlib.util.find_spec("tensorflow") is not None


def require_tensorflow(what: str = "TensorFlow") -> None:
    """Raise the one-line "install the train extra" error when TensorFlow is absent (without importing it).

    Raises:
        BackendUnavailableError: TensorFlow is not installed.
    """
    if not tensorflow_installed():
        raise missing_extra(what, "train")


def import_tensorflow() -> tuple[ModuleType, ModuleType]:
    """``(tensorflow, keras)``, imported quietly.

    Raises:
        BackendUnavailableError: TensorFlow is not installed (names ``edgeclf[train]``).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    try:
        import keras
        import tensorflow as tf
    except ImportError:
        raise missing_extra("TensorFlow", "train") from None
    return tf, keras


def import_keras() -> ModuleType:
    """The ``keras`` module (TensorFlow backend), imported quietly; see :func:`import_tensorflow`."""
    return import_tensorflow()[1]


def run_model_file(run_dir: str | Path, manifest: Manifest) -> Path:
    """The path of the run's ``model.keras``, checked to exist and to be a Keras archive (without Keras).

    Raises:
        ManifestError: the file is missing or not a Keras archive.
    """
    path = run_file(Path(run_dir), manifest.model_file)
    if not path.is_file():
        raise ManifestError(f"{path}: missing; the run folder is incomplete (re-run `edgeclf train`)")
    if not zipfile.is_zipfile(path):  # else Keras says "File not found" about a file that exists
        raise ManifestError(f"{path}: not a Keras archive (corrupt or truncated); re-run `edgeclf train`")
    return path


def load_run_model(run_dir: str | Path, manifest: Manifest) -> Any:
    """The run's ``model.keras``, checked against its manifest (inputs, input shape and dtype, outputs).

    Raises:
        ManifestError: the file is missing, not a Keras archive, unloadable, or another model's.
        BackendUnavailableError: TensorFlow is not installed.
    """
    path = run_model_file(run_dir, manifest)
    keras = import_keras()
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises ValueError, OSError, zipfile errors… for a bad file
        raise ManifestError(
            f"{path}: cannot be loaded by Keras ({first_line(error)}); re-run `edgeclf train`"
        ) from None
    check_model(path, model, manifest)
    return model


def check_model(path: Path, model: Any, manifest: Manifest) -> None:
    """Raise :class:`ManifestError` unless ``model`` has the manifest's one input and one output.

    ``path`` only names the file in the message.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ManifestError(
            f"{path}: has {len(model.inputs)} inputs and {len(model.outputs)} outputs; expected 1 and 1"
        )
    spec = manifest.input
    shape = tuple(model.inputs[0].shape)
    if tuple(shape[1:]) != spec.shape:
        raise ManifestError(
            f"{path}: input shape {list(shape)} does not match the manifest's {spec.height}x{spec.width}x"
            f"{spec.channels}; the manifest belongs to another model (re-run `edgeclf train`)"
        )
    dtype = str(getattr(model.inputs[0], "dtype", "uint8"))
    if dtype != spec.dtype:
        raise ManifestError(f"{path}: input dtype {dtype} does not match the manifest's {spec.dtype}")
    width = model.outputs[0].shape[-1]
    if width != manifest.num_outputs:
        raise ManifestError(
            f"{path}: outputs {width} values but the manifest has {len(manifest.labels)} labels "
            f"({manifest.output_activation}, expects {manifest.num_outputs}); the manifest belongs to another model"
        )


def save_model(model: Any, path: str | Path) -> Path:
    """Save ``model`` to ``path`` (a ``.keras`` file) atomically: a failed save leaves no file behind."""
    path = Path(path)
    with atomic_path(path, keep_suffix=True) as tmp:
        model.save(tmp)
    return path
