"""What every export function is given: the Keras model, the run's manifest and shared inputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.manifest import Manifest

# Runtimes ``--target`` can name, and what each means.
TARGETS = {
    "tflite-runtime": "tflite-runtime 2.14 (the last release, on many Raspberry Pis)",
}


@dataclass
class ConversionContext:
    """Shared state of one ``export_run``: built once, handed to each format's functions.

    Attributes:
        model: the loaded Keras model (uint8 ``(None, H, W, 3)`` input).
        manifest: the run's manifest (labels, input spec) without the new artifacts.
        batch_size: ``1`` for a static batch (default), ``None`` for a dynamic batch dimension.
        opset: ONNX opset.
        target: ``None`` or a key of :data:`TARGETS`.
        work_dir: a private folder for intermediate files (removed after the export).
        tflite_runtime_python: a Python that has tflite-runtime 2.14, for verifying loads; or ``None``.
        load_calibration: returns the calibration images ``(N, H, W, 3)`` uint8 (loaded once).
        warn: prints a one-line warning.
    """

    model: Any
    manifest: Manifest
    batch_size: int | None
    opset: int
    target: str | None
    work_dir: Path
    tflite_runtime_python: Path | None
    load_calibration: Callable[[], np.ndarray]
    warn: Callable[[str], None] = print
    _cache: dict[str, Any] = field(default_factory=dict)

    def calibration_images(self) -> np.ndarray:
        """The representative images (the same array for every int8 format)."""
        if "calibration" not in self._cache:
            self._cache["calibration"] = self.load_calibration()
        return self._cache["calibration"]

    def embedded_payload(self) -> dict[str, Any]:
        """What each artifact embeds: :meth:`Manifest.to_embedded`."""
        return self.manifest.to_embedded()

    def input_shape(self) -> tuple[int | None, int, int, int]:
        """``(batch, H, W, 3)`` of the exported models' input."""
        spec = self.manifest.input
        return (self.batch_size, spec.height, spec.width, spec.channels)
