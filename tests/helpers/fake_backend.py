"""A stand-in interpreter for testing the command line's plumbing, not inference.

Its score is the image's mean red level. It is registered for a ``.fake`` suffix only, so it never
competes with a real backend for a real model file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeclf.runtime.backends import BACKENDS, Backend, Session
from edgeclf.runtime.fileio import sha256_file
from edgeclf.runtime.manifest import Artifact, InputSpec, Manifest, TensorInfo

SPEC = InputSpec(8, 8)
IN = TensorInfo("images", "uint8", (1, 8, 8, 3))
OUT = TensorInfo("scores", "float32", (1, 1))


class RedSession(Session):
    backend_name = "fake"

    def __init__(self, path, threads):
        self.path, self.threads = Path(path), threads
        self.inputs, self.outputs = (IN,), (OUT,)

    def set_input(self, batch):
        self._batch = self.check_batch(batch)

    def invoke(self):
        self._out = self._batch[..., 0].mean(axis=(1, 2), dtype=np.float32)[:, None] / 255.0

    def get_output(self):
        return self._out.copy()

    def close(self):
        pass


class RedBackend(Backend):
    def available(self):
        return True

    def load(self, path, threads=None):
        return RedSession(path, threads or 1)

    def _load(self, module, path, threads):  # pragma: no cover - load() is overridden
        raise NotImplementedError


def make_fake_run(folder: Path, monkeypatch) -> Path:
    """Register the fake backend (undone by ``monkeypatch``) and write a run folder that uses it."""
    monkeypatch.setitem(BACKENDS, "fake", RedBackend("fake", "fake", (".fake",), "nothing to install"))
    folder.mkdir()
    model = folder / "model_fake.fake"
    model.write_bytes(b"stand-in model")
    artifact = Artifact("fake", "fp32", model.name, model.stat().st_size, sha256_file(model), "fake", (IN,), (OUT,))
    Manifest(("cars", "elephants"), SPEC, "sigmoid", "test", artifacts=(artifact,)).save(folder)
    return folder
