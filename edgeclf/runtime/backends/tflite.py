"""The part both TFLite interpreters share: ai-edge-litert and tflite-runtime have the same API."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from edgeclf.runtime.backends.base import Backend, Session
from edgeclf.runtime.errors import BackendUnavailableError, InputShapeError, ModelLoadError, first_line
from edgeclf.runtime.manifest import TensorInfo

# tflite-runtime 2.14 is built against NumPy 1.x: with NumPy 2 it imports, then fails when an
# Interpreter is created (docs/stack.md). Recognise that message and say what to install.
_NUMPY_ABI_HINTS = ("compiled using NumPy 1.x", "_ARRAY_API not found", "numpy.core.multiarray failed to import")


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Collect what the C++ interpreter writes to file descriptor 2 while loading.

    On success that is only "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." (noise on a
    Pi's terminal, with no Python switch to silence it: mediapipe#2119, tensorflow#58050); on
    failure it holds the real reason ("Didn't find op for builtin opcode ..."), which the Python
    exception often lacks. The lines are returned in the yielded list after the block.
    """
    lines: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded interpreter): leave it alone
        yield lines
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace")
            lines.extend(line.strip() for line in text.splitlines() if line.strip())


def _tensor_info(detail: dict[str, Any]) -> TensorInfo:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    signature = detail.get("shape_signature")
    shape = signature if signature is not None and len(signature) else detail["shape"]
    return TensorInfo(
        name=str(detail["name"]),
        dtype=np.dtype(detail["dtype"]).name,
        shape=tuple(int(x) for x in shape),
        scale=float(scale) if scale else None,
        zero_point=int(zero_point) if scale else None,
    )


class TFLiteSession(Session):
    """A ``.tflite`` model in an ``Interpreter`` (either package)."""

    def __init__(self, interpreter: Any, path: Path, threads: int, backend_name: str) -> None:
        self._interpreter = interpreter
        self.path = path
        self.threads = threads
        self.backend_name = backend_name
        self._input = interpreter.get_input_details()[0]
        self._output = interpreter.get_output_details()[0]
        self.inputs = tuple(_tensor_info(d) for d in interpreter.get_input_details())
        self.outputs = tuple(_tensor_info(d) for d in interpreter.get_output_details())
        self._batch = int(self._input["shape"][0])

    @property
    def dynamic_batch(self) -> bool:
        """True when the model's batch dimension can be resized."""
        return self.inputs[0].shape[0] == -1

    def set_input(self, batch: np.ndarray) -> None:
        batch = self.check_batch(batch)
        if batch.shape[0] != self._batch:
            if not self.dynamic_batch:
                # A static batch-1 model: run() loops over the images instead.
                raise InputShapeError("batch size of this static-batch model", self._batch, batch.shape[0])
            self._interpreter.resize_tensor_input(self._input["index"], list(batch.shape))
            self._interpreter.allocate_tensors()
            self._batch = batch.shape[0]
        self._interpreter.set_tensor(self._input["index"], batch)

    def invoke(self) -> None:
        self._interpreter.invoke()

    def get_output(self) -> np.ndarray:
        return np.array(self._interpreter.get_tensor(self._output["index"]), copy=True)

    def close(self) -> None:
        self._interpreter = None


class TFLiteBackend(Backend):
    """Loads ``.tflite`` files with ``<module>.Interpreter`` (``module`` ends in ``.interpreter``)."""

    def _load(self, module: ModuleType, path: Path, threads: int) -> Session:
        try:
            with _captured_stderr() as printed:
                interpreter = module.Interpreter(model_path=str(path), num_threads=threads)
                interpreter.allocate_tensors()
        except (ImportError, RuntimeError, ValueError, AttributeError, SystemError) as error:
            # tflite-runtime 2.14 under NumPy 2 raises SystemError("... returned a result with an
            # exception set") whose cause is ImportError("numpy.core.multiarray failed to import").
            reasons = [line for line in printed if not line.startswith("INFO:")]
            message = first_line(error)
            if reasons and reasons[0] not in message:
                message = f"{reasons[0].removeprefix('ERROR: ')}; {message}"
            causes = f"{error} {error.__cause__ or ''} {' '.join(printed)}"
            if any(hint in causes for hint in _NUMPY_ABI_HINTS):
                raise BackendUnavailableError(
                    f"{self.name} with NumPy 2 ({message})",
                    "pip install 'numpy<2' (tflite-runtime is built for NumPy 1.x)",
                ) from None
            raise ModelLoadError(f"{path}: {self.name} cannot load this model ({message})") from None
        return TFLiteSession(interpreter, path, threads, self.name)
