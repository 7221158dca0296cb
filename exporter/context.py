"""What every export function is given: the Keras model, the run's manifest and shared inputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.manifest import Manifest
from edge_runtime.registry import Registry

# Runtimes ``--target`` can name, and what each means.
TARGETS: Registry[str] = Registry("target")
TARGETS.register("tflite-runtime", "tflite-runtime 2.14 (the last release, on many Raspberry Pis)")


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
        load_calibration: ``load_calibration(count)`` returns ``count`` calibration images (all there
            are when fewer) ``(N, H, W, 3)`` uint8; ``None``: as many as the export config says.
        warn: prints a one-line warning.
        validation_images: the validation images every file is run on (uint8 ``(N, H, W, 3)``).
        judge: ``judge(fmt, scores)`` compares a runtime's scores on ``validation_images`` with Keras
            under ``fmt``'s bounds: the metrics plus ``"failures"`` (one line per missed bound).
    """

    model: Any
    manifest: Manifest
    batch_size: int | None
    opset: int
    target: str | None
    work_dir: Path
    tflite_runtime_python: Path | None
    load_calibration: Callable[[int | None], np.ndarray]
    warn: Callable[[str], None] = print
    validation_images: np.ndarray | None = None
    judge: Callable[[Any, np.ndarray], dict[str, Any]] | None = None
    _cache: dict[str, Any] = field(default_factory=dict)

    def calibration_images(self, count: int | None = None) -> np.ndarray:
        """``count`` representative images (the same array for every format asking for that many)."""
        key = "calibration" if count is None else f"calibration:{count}"
        if key not in self._cache:
            self._cache[key] = self.load_calibration(count)
        return self._cache[key]

    def embedded_payload(self) -> dict[str, Any]:
        """What each artifact embeds: :meth:`Manifest.to_embedded`."""
        return self.manifest.to_embedded()

    def input_shape(self) -> tuple[int | None, int, int, int]:
        """``(batch, H, W, 3)`` of the exported models' input."""
        spec = self.manifest.input
        return (self.batch_size, spec.height, spec.width, spec.channels)
