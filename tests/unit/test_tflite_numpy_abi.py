"""tflite-runtime 2.14 under NumPy 2 becomes one clear line naming 'numpy<2', not a traceback.

Seen with tflite-runtime 2.14.0 and NumPy 2.4.6 (x86-64, Python 3.11): creating the Interpreter
prints "A module that was compiled using NumPy 1.x cannot be run in NumPy 2..." on stderr and raises
``SystemError("<built-in method CreateWrapperFromFile ...> returned a result with an exception set")``
whose cause is ``ImportError("numpy.core.multiarray failed to import")``. The package below raises
that same chain, so the test runs where that combination is not installed.
"""

from __future__ import annotations

import sys

import pytest

from edgeclf.runtime.backends.tflite import TFLiteBackend
from edgeclf.runtime.errors import BackendUnavailableError

INTERPRETER = """
import sys


class Interpreter:
    def __init__(self, model_path, num_threads=None):
        sys.stderr.write("A module that was compiled using NumPy 1.x cannot be run in\\n")
        sys.stderr.flush()
        try:
            raise ImportError("numpy.core.multiarray failed to import")
        except ImportError as error:
            raise SystemError(
                "<built-in method CreateWrapperFromFile of PyCapsule object> returned a result with an exception set"
            ) from error
"""


def test_systemerror_caused_by_the_numpy_import_names_numpy_below_2(tmp_path, monkeypatch):
    package = tmp_path / "abi_broken_tflite"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "interpreter.py").write_text(INTERPRETER)
    monkeypatch.syspath_prepend(str(tmp_path))
    model = tmp_path / "m.tflite"
    model.write_bytes(b"TFL3")
    backend = TFLiteBackend(
        name="tflite-runtime", module="abi_broken_tflite.interpreter", suffixes=(".tflite",), install="pip install x"
    )
    try:
        with pytest.raises(BackendUnavailableError, match=r"numpy<2"):
            backend.load(model, threads=1)
    finally:
        sys.modules.pop("abi_broken_tflite.interpreter", None)
        sys.modules.pop("abi_broken_tflite", None)
