"""What every interpreter backend provides: a :class:`Backend` that loads a file into a :class:`Session`.

A session is one loaded model. It reports its tensors as :class:`~edgeclf.runtime.manifest.TensorInfo`
read from the interpreter itself (name, dtype, shape with ``-1`` for a dynamic dimension, scale and
zero point), and runs *raw* tensors: quantisation and dequantisation are the classifier's job
(:mod:`edgeclf.runtime.classifier`), so every backend is handled the same way.

``set_input`` / ``invoke`` / ``get_output`` are separate so a benchmark can time ``invoke`` alone;
``run`` does all three for a batch of any size.
"""

from __future__ import annotations

import abc
import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from edgeclf.runtime.errors import BackendUnavailableError, InputShapeError, ModelLoadError, option_error
from edgeclf.runtime.manifest import TensorInfo


def default_threads() -> int:
    """All cores the process may use (the ``--threads`` default)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def max_threads() -> int:
    """The most interpreter threads accepted: 4x the usable cores, at least 8.

    Past the core count the interpreters only add contention; a few times more is still allowed so
    a thread sweep can show that. Unbounded counts are harmful: onnxruntime grew to 16.9 GB with
    ``--threads 100000`` (one pool thread, stack and arena each), and LiteRT segfaulted at 33,000+.
    """
    return max(8, 4 * default_threads())


def check_threads(threads: int | None) -> int:
    """Resolve ``None`` to all cores; refuse a count outside ``1..max_threads()``."""
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= max_threads():
        raise option_error(
            "--threads", f"1 to {max_threads()} on this machine ({default_threads()} cores, 4x at most)", threads
        )
    return int(threads)


class Session(abc.ABC):
    """One model loaded in one interpreter."""

    backend_name: str = ""
    path: Path
    threads: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    @abc.abstractmethod
    def set_input(self, batch: np.ndarray) -> None:
        """Copy ``batch`` (already in the input tensor's dtype) into the first input tensor."""

    @abc.abstractmethod
    def invoke(self) -> None:
        """Run the model on the tensor set by :meth:`set_input`."""

    @abc.abstractmethod
    def get_output(self) -> np.ndarray:
        """Return a copy of the first output tensor, raw (still quantised when the model is)."""

    def run(self, batch: np.ndarray) -> np.ndarray:
        """``set_input`` + ``invoke`` + ``get_output`` for a batch of any size.

        A model exported with a static batch of 1 is run once per image.
        """
        batch = self.check_batch(batch)
        fixed = self.inputs[0].shape[0]
        if fixed > 0 and len(batch) != fixed:
            if fixed != 1:
                raise InputShapeError(f"batch size of input tensor {self.inputs[0].name!r}", fixed, len(batch))
            if len(batch) == 0:
                out = self.outputs[0]
                return np.zeros((0, *(max(d, 1) for d in out.shape[1:])), dtype=np.dtype(out.dtype))
            return np.concatenate([self._run_once(batch[i : i + 1]) for i in range(len(batch))])
        return self._run_once(batch)

    def _run_once(self, batch: np.ndarray) -> np.ndarray:
        self.set_input(batch)
        self.invoke()
        return self.get_output()

    @abc.abstractmethod
    def close(self) -> None:
        """Release the interpreter (the session is unusable afterwards)."""

    def check_batch(self, batch: np.ndarray) -> np.ndarray:
        """Refuse a batch whose dtype or per-image shape differs from the first input tensor."""
        spec = self.inputs[0]
        if batch.dtype != np.dtype(spec.dtype):
            raise InputShapeError(f"input tensor {spec.name!r} dtype", spec.dtype, str(batch.dtype))
        expected = tuple(spec.shape[1:])
        actual = tuple(batch.shape[1:])
        if batch.ndim != len(spec.shape) or any(e not in (-1, a) for e, a in zip(expected, actual, strict=True)):
            raise InputShapeError(f"input tensor {spec.name!r} shape", ("N", *expected), batch.shape)
        return np.ascontiguousarray(batch)


@dataclass(frozen=True)
class Backend(abc.ABC):
    """An interpreter package that can load model files of some suffixes.

    Attributes:
        name: registry name (``"litert"``, ``"tflite-runtime"``, ``"onnxruntime"``).
        module: the Python module imported (lazily) to run models.
        suffixes: file suffixes it loads.
        install: what to type when the package is missing.
    """

    name: str
    module: str
    suffixes: tuple[str, ...]
    install: str

    def available(self) -> bool:
        """True when the package is importable (checked without importing it)."""
        try:
            return importlib.util.find_spec(self.module.split(".")[0]) is not None
        except (ImportError, ValueError):
            return False

    def import_module(self) -> ModuleType:
        """Import the interpreter package or raise :class:`BackendUnavailableError` with the pip command."""
        try:
            return importlib.import_module(self.module)
        except ImportError as error:
            raise BackendUnavailableError(f"{self.name} ({self.module}; {error})", self.install) from None

    def load(self, path: str | Path, threads: int | None = None) -> Session:
        """Load ``path`` into a new :class:`Session` using ``threads`` threads (``None``: all cores).

        Raises:
            BackendUnavailableError: the interpreter package is not installed.
            ModelLoadError: the file is missing, corrupt, or uses ops this interpreter lacks.
        """
        path = Path(path)
        if not path.is_file():
            raise ModelLoadError(f"{path}: no such model file")
        threads = check_threads(threads)
        module = self.import_module()
        return self._load(module, path, threads)

    @abc.abstractmethod
    def _load(self, module: ModuleType, path: Path, threads: int) -> Session: ...
