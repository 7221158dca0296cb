"""ONNX Runtime (CPU) for ``.onnx`` files."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from edgeclf.runtime.backends.base import Backend, Session
from edgeclf.runtime.errors import ModelLoadError, first_line
from edgeclf.runtime.manifest import TensorInfo

# ONNX element type strings as ONNX Runtime reports them -> numpy dtype names.
_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def _tensor_info(node: Any) -> TensorInfo:
    shape = tuple(int(d) if isinstance(d, int) else -1 for d in node.shape)
    return TensorInfo(name=node.name, dtype=_ORT_TYPES.get(node.type, node.type), shape=shape)


class OnnxSession(Session):
    """An ``.onnx`` model in an ``onnxruntime.InferenceSession`` (CPU provider)."""

    backend_name = "onnxruntime"

    def __init__(self, session: Any, path: Path, threads: int) -> None:
        self._session = session
        self.path = path
        self.threads = threads
        self.inputs = tuple(_tensor_info(n) for n in session.get_inputs())
        self.outputs = tuple(_tensor_info(n) for n in session.get_outputs())
        self._feed: dict[str, np.ndarray] = {}
        self._result: np.ndarray | None = None

    def set_input(self, batch: np.ndarray) -> None:
        self._feed = {self.inputs[0].name: self.check_batch(batch)}
        self._result = None

    def invoke(self) -> None:
        if not self._feed:
            raise RuntimeError("set_input() must be called before invoke()")
        self._result = self._session.run([self.outputs[0].name], self._feed)[0]

    def get_output(self) -> np.ndarray:
        if self._result is None:
            raise RuntimeError("invoke() must be called before get_output()")
        return np.array(self._result, copy=True)

    def close(self) -> None:
        self._session = None


class OnnxRuntimeBackend(Backend):
    """Loads ``.onnx`` files on the CPU execution provider."""

    def _load(self, module: ModuleType, path: Path, threads: int) -> Session:
        options = module.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: no provider chatter on the Pi's terminal
        # Idle intra-op threads otherwise spin after each run and take the cores the next image's
        # decode and resize need (measured: preprocessing ~2x slower beside a spinning session).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = module.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise ModelLoadError(f"{path}: onnxruntime cannot load this model ({first_line(error)})") from None
        return OnnxSession(session, path, threads)


BACKEND = OnnxRuntimeBackend(
    name="onnxruntime",
    module="onnxruntime",
    suffixes=(".onnx",),
    install="pip install 'edgeclf[edge]' (or: pip install onnxruntime)",
)
